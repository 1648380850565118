//! The pixels of a figure: an RGB canvas with the few drawing primitives the plot needs
//! (pixels, filled rectangles, one-pixel frames, text level or turned up) and its PNG encoding.

use super::font::{glyph, ADVANCE, GLYPH_W, SCALE};

/// A colour, 8 bits a channel.
pub(super) type Rgb = [u8; 3];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
/// A rectangle of pixels: top-left corner, width and height.
pub(super) struct Rect {
    pub(super) x: usize,
    pub(super) y: usize,
    pub(super) w: usize,
    pub(super) h: usize,
}

impl Rect {
    pub(super) fn right(&self) -> usize {
        self.x + self.w
    }
    pub(super) fn bottom(&self) -> usize {
        self.y + self.h
    }
}

/// An RGB image, row-major, 3 bytes a pixel.
pub(super) struct Canvas {
    width: usize,
    height: usize,
    rgb: Vec<u8>,
}

impl Canvas {
    /// A canvas of `width` × `height` pixels, all `background`.
    pub(super) fn new(width: usize, height: usize, background: Rgb) -> Canvas {
        let mut rgb = Vec::with_capacity(width * height * 3);
        for _ in 0..width * height {
            rgb.extend_from_slice(&background);
        }
        Canvas { width, height, rgb }
    }

    /// Sets one pixel; coordinates outside the canvas are ignored, so callers can draw text and
    /// marks without clipping them first.
    pub(super) fn put(&mut self, x: i64, y: i64, colour: Rgb) {
        if x < 0 || y < 0 || x >= self.width as i64 || y >= self.height as i64 {
            return;
        }
        let i = (y as usize * self.width + x as usize) * 3;
        self.rgb[i..i + 3].copy_from_slice(&colour);
    }

    pub(super) fn fill(&mut self, x: i64, y: i64, w: usize, h: usize, colour: Rgb) {
        for dy in 0..h as i64 {
            for dx in 0..w as i64 {
                self.put(x + dx, y + dy, colour);
            }
        }
    }

    #[cfg(test)]
    pub(super) fn pixel(&self, x: usize, y: usize) -> Rgb {
        let i = (y * self.width + x) * 3;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    /// A one-pixel frame drawn just outside `r`, so it never covers the cells inside.
    pub(super) fn frame_around(&mut self, r: Rect, colour: Rgb) {
        let (x0, y0) = (r.x as i64 - 1, r.y as i64 - 1);
        let (x1, y1) = (r.right() as i64, r.bottom() as i64);
        for x in x0..=x1 {
            self.put(x, y0, colour);
            self.put(x, y1, colour);
        }
        for y in y0..=y1 {
            self.put(x0, y, colour);
            self.put(x1, y, colour);
        }
    }

    /// Draws ASCII `text` with the top of its capitals at `(x, y)`.
    pub(super) fn text(&mut self, x: i64, y: i64, text: &str, colour: Rgb) {
        for (i, c) in text.chars().enumerate() {
            let gx = x + (i * ADVANCE) as i64;
            for (row, bits) in glyph(c).iter().enumerate() {
                for col in 0..GLYPH_W {
                    if bits & (1 << (GLYPH_W - 1 - col)) != 0 {
                        let px = gx + (col * SCALE) as i64;
                        let py = y + (row * SCALE) as i64;
                        self.fill(px, py, SCALE, SCALE, colour);
                    }
                }
            }
        }
    }

    /// Draws ASCII `text` turned a quarter turn anticlockwise (read from bottom to top, tops of
    /// the letters to the left), the way y-axis labels are set: the tops of the capitals are at
    /// column `x`, the first character starts at row `y_bottom`.
    pub(super) fn text_up(&mut self, x: i64, y_bottom: i64, text: &str, colour: Rgb) {
        for (i, c) in text.chars().enumerate() {
            let along = (i * ADVANCE) as i64;
            for (row, bits) in glyph(c).iter().enumerate() {
                for col in 0..GLYPH_W {
                    if bits & (1 << (GLYPH_W - 1 - col)) != 0 {
                        let tx = along + (col * SCALE) as i64;
                        let ty = (row * SCALE) as i64;
                        // Unturned (tx, ty) → turned (x + ty, y_bottom - tx); the SCALE×SCALE
                        // block covers tx..tx+SCALE, i.e. rows y_bottom-tx-SCALE+1..=y_bottom-tx.
                        self.fill(
                            x + ty,
                            y_bottom - tx - SCALE as i64 + 1,
                            SCALE,
                            SCALE,
                            colour,
                        );
                    }
                }
            }
        }
    }

    pub(super) fn encode_png(&self) -> Result<Vec<u8>, png::EncodingError> {
        let mut out = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut out, self.width as u32, self.height as u32);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header()?;
            writer.write_image_data(&self.rgb)?;
            writer.finish()?;
        }
        Ok(out)
    }
}
