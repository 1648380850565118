//! A self-contained PNG heat-map renderer for `melpipe plot`.
//!
//! It draws one 2-D matrix (mel band × segment, values in dB) as a figure a person can read: a
//! title, both axes with ticks and numeric labels, axis labels, a colour bar with its own dB ticks,
//! and NaN cells in a grey that the legend names. This file holds the layout (margins from the
//! labels' widths, ticks, the colour scale) and the drawing of the figure; `canvas` holds the
//! pixels and their few primitives, `font` the bitmap font and its metrics. It needs no system
//! fonts, so the figure is the same on every machine.
//!
//! Why not a plotting crate: `plotters` (bitmap backend, `ab_glyph` text, no `ttf` feature, which
//! would look fonts up on the system) adds 9 crates, about 10 s of CPU to a release build (twice
//! what the `png` crate alone costs) and 600 KB to the binary, 340 KB of it the embedded TTF font
//! it then needs; its anti-aliased text and its own text metrics would change the look and the
//! layout. `embedded-graphics` with its 6×10 font is closer in look and costs 7 crates, about
//! 5 s of CPU and 12 KB, but it removes only the font table (about 100 lines) and needs an adapter
//! for the 2× scale and the turned y-axis labels. The canvas and the font here are about 300 lines
//! with no dependency but `png`, so they stay.

mod canvas;
mod font;

use canvas::{Canvas, Rect, Rgb};
use font::{text_width, to_ascii, ADVANCE, CAP_H, LINE_H, SCALE};
use std::fmt;

/// Width of every figure, in pixels.
pub const WIDTH: usize = 1000;
/// Height of every figure, in pixels.
pub const HEIGHT: usize = 600;

/// A matrix to draw, with its labels.
pub struct HeatMap<'a> {
    /// `n_y × n_x` values, row-major: `values[y * n_x + x]`; `y = 0` is the lowest mel band and
    /// is drawn at the bottom.
    pub values: &'a [f32],
    /// Number of columns (segments, or segments × frames for unpooled features).
    pub n_x: usize,
    /// Number of rows (mel bands).
    pub n_y: usize,
    /// Title above the plot; characters outside ASCII are drawn as `?` (dashes as `-`).
    pub title: &'a str,
    /// Label under the x axis, e.g. "segment".
    pub x_label: &'a str,
    /// Label beside the y axis, e.g. "mel band".
    pub y_label: &'a str,
    /// Label beside the colour bar, e.g. "dB".
    pub colorbar_label: &'a str,
}

/// Why a heat map could not be drawn.
#[derive(Debug)]
pub enum PlotError {
    /// The matrix has no rows or no columns.
    Empty { n_x: usize, n_y: usize },
    /// `values.len()` is not `n_x * n_y`.
    ShapeMismatch { len: usize, n_x: usize, n_y: usize },
    /// The PNG encoder failed.
    Encode(png::EncodingError),
}

impl fmt::Display for PlotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlotError::Empty { n_x, n_y } => {
                write!(
                    f,
                    "nothing to plot: the matrix has {n_y} rows and {n_x} columns"
                )
            }
            PlotError::ShapeMismatch { len, n_x, n_y } => write!(
                f,
                "heat map has {len} values but {n_y} rows x {n_x} columns were declared"
            ),
            PlotError::Encode(e) => write!(f, "could not encode the PNG: {e}"),
        }
    }
}

impl std::error::Error for PlotError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PlotError::Encode(e) => Some(e),
            _ => None,
        }
    }
}

/// Renders `map` as an RGB PNG of [`WIDTH`] × [`HEIGHT`] pixels.
pub fn render_png(map: &HeatMap) -> Result<Vec<u8>, PlotError> {
    let (canvas, _) = render(map)?;
    canvas.encode_png().map_err(PlotError::Encode)
}

const BACKGROUND: Rgb = [255, 255, 255];
const INK: Rgb = [20, 20, 20];
/// Cells whose value is NaN (failed files). Viridis never passes near a neutral grey.
const NAN_GREY: Rgb = [170, 170, 170];

/// Viridis (matplotlib's default colormap) at 11 evenly spaced stops; linear interpolation between
/// them stays within a few levels of the full 256-entry table. Perceptually uniform and readable
/// in greyscale, which matters for dB data read by eye.
const VIRIDIS: [Rgb; 11] = [
    [68, 1, 84],
    [72, 36, 117],
    [65, 68, 135],
    [53, 95, 141],
    [42, 120, 142],
    [33, 145, 140],
    [34, 168, 132],
    [68, 191, 112],
    [122, 209, 81],
    [189, 223, 38],
    [253, 231, 37],
];

/// Colour of `t` in [0, 1] (clamped) on the viridis scale.
fn viridis(t: f64) -> Rgb {
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
    let pos = t * (VIRIDIS.len() - 1) as f64;
    let i = (pos.floor() as usize).min(VIRIDIS.len() - 2);
    let frac = pos - i as f64;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    let mix = |k: usize| (a[k] as f64 + (b[k] as f64 - a[k] as f64) * frac).round() as u8;
    [mix(0), mix(1), mix(2)]
}

// ---------------------------------------------------------------------------------------------
// Titles

/// Shortens ASCII `text` to at most `max_chars` characters by cutting its middle, so both the start
/// of a path and the end (file name, kind of features) stay visible.
fn truncate_middle(text: &str, max_chars: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= max_chars {
        return text.to_string();
    }
    if max_chars <= 3 {
        return ".".repeat(max_chars);
    }
    let keep = max_chars - 3;
    let head = keep / 3;
    let tail = keep - head;
    let mut out: String = chars[..head].iter().collect();
    out.push_str("...");
    out.extend(&chars[chars.len() - tail..]);
    out
}

// ---------------------------------------------------------------------------------------------
// Data range and ticks

/// What the colour scale needs to know about the values.
struct ValueStats {
    /// Smallest and largest finite value; `None` when there is none.
    finite_range: Option<(f64, f64)>,
    nan_count: usize,
}

fn value_stats(values: &[f32]) -> ValueStats {
    let mut range: Option<(f64, f64)> = None;
    let mut nan_count = 0;
    for &v in values {
        if v.is_nan() {
            nan_count += 1;
        } else if v.is_finite() {
            let v = v as f64;
            range = Some(match range {
                None => (v, v),
                Some((lo, hi)) => (lo.min(v), hi.max(v)),
            });
        }
    }
    ValueStats {
        finite_range: range,
        nan_count,
    }
}

/// The value range the colours span. A single finite value gets a small range around it, so it is
/// drawn in the middle of the scale with readable ticks rather than dividing by zero.
fn colour_range(stats: &ValueStats) -> (f64, f64) {
    match stats.finite_range {
        None => (0.0, 1.0),
        Some((lo, hi)) => {
            let magnitude = lo.abs().max(hi.abs());
            if hi - lo <= magnitude * 1e-9 {
                let pad = (magnitude * 1e-3).max(0.5);
                (lo - pad, hi + pad)
            } else {
                (lo, hi)
            }
        }
    }
}

/// Step between labelled cell indices: the smallest of 1, 2, 5, 10, 20, 25, 50, 100, … that keeps
/// the number of ticks on `0..n` at or under `max_ticks`.
fn index_step(n: usize, max_ticks: usize) -> usize {
    let max_ticks = max_ticks.max(1);
    let last = n.saturating_sub(1);
    let mut magnitude = 1usize;
    loop {
        let steps = [
            magnitude,
            magnitude.saturating_mul(2),
            // 2.5 only from 25 up: cell indices are integers.
            if magnitude >= 10 {
                (magnitude / 2).saturating_mul(5)
            } else {
                magnitude.saturating_mul(2)
            },
            magnitude.saturating_mul(5),
        ];
        if let Some(&step) = steps.iter().find(|&&step| last / step < max_ticks) {
            return step;
        }
        match magnitude.checked_mul(10) {
            Some(m) => magnitude = m,
            None => return usize::MAX,
        }
    }
}

/// A labelled position on an axis or the colour bar.
struct Tick {
    /// Pixel coordinate (x for the x axis, y otherwise).
    at: usize,
    label: String,
}

/// Ticks at the centres of cells `0, step, 2·step, …` of an axis of `n` cells drawn over
/// `pixels` pixels starting at `origin`; `flip` counts cells from the far end (the y axis, whose
/// cell 0 is at the bottom).
fn index_ticks(
    n: usize,
    pixels: usize,
    origin: usize,
    flip: bool,
    min_spacing: usize,
) -> Vec<Tick> {
    let max_ticks = pixels / min_spacing.max(1) + 1;
    let step = index_step(n, max_ticks);
    (0..n)
        .step_by(step)
        .map(|i| {
            let centre = ((i as f64 + 0.5) * pixels as f64 / n as f64) as usize;
            let centre = centre.min(pixels - 1);
            let at = if flip {
                origin + pixels - 1 - centre
            } else {
                origin + centre
            };
            Tick {
                at,
                label: i.to_string(),
            }
        })
        .collect()
}

/// A "nice" step (1, 2, 2.5 or 5 × 10^k) of at least `raw`, and how many decimals its multiples
/// need to be told apart.
fn nice_step(raw: f64) -> (f64, i32) {
    if !(raw.is_finite() && raw > 0.0) {
        return (0.0, 0);
    }
    let exponent = raw.log10().floor();
    let base = 10f64.powf(exponent);
    for (mantissa, extra) in [(1.0, 0), (2.0, 0), (2.5, 1), (5.0, 0), (10.0, 0)] {
        let step = mantissa * base;
        if step >= raw * (1.0 - 1e-12) {
            let exp = if mantissa == 10.0 {
                exponent + 1.0
            } else {
                exponent
            };
            let decimals = (extra - exp as i32).max(0);
            return (step, decimals);
        }
    }
    (10.0 * base, (-1 - exponent as i32).max(0))
}

fn format_value(v: f64, step: f64, decimals: i32, magnitude: f64) -> String {
    let label = if magnitude < 1e7 && decimals <= 12 {
        format!("{:.*}", decimals as usize, v)
    } else {
        // Very large or very finely spaced values: scientific, with enough mantissa digits to
        // tell neighbouring ticks apart.
        let digits = (magnitude.log10().floor() - step.log10().floor()).clamp(1.0, 12.0);
        format!("{:.*e}", digits as usize, v)
    };
    if label.starts_with('-') && label[1..].chars().all(|c| c == '0' || c == '.') {
        label[1..].to_string()
    } else {
        label
    }
}

/// Ticks for the colour bar spanning `bar` (bottom = `lo`, top = `hi`).
fn value_ticks(lo: f64, hi: f64, bar: Rect, min_spacing: usize) -> Vec<Tick> {
    let intervals = (bar.h / min_spacing.max(1)).max(1) as f64;
    let (step, decimals) = nice_step((hi - lo) / intervals);
    if !(step.is_finite() && step > 0.0) {
        return Vec::new();
    }
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    let magnitude = lo.abs().max(hi.abs());
    (first..=last)
        .take(64)
        .map(|k| {
            let v = k as f64 * step;
            let t = ((v - lo) / (hi - lo)).clamp(0.0, 1.0);
            let at = bar.y + ((1.0 - t) * (bar.h - 1) as f64).round() as usize;
            Tick {
                at,
                label: format_value(v, step, decimals, magnitude),
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Layout

const MARGIN: usize = 12;
const TICK_LEN: usize = 6;
const TICK_GAP: usize = 5;
const LABEL_GAP: usize = 10;
const TITLE_TOP: usize = 14;
const PLOT_TOP: usize = TITLE_TOP + LINE_H + 16;
const PLOT_BOTTOM_MARGIN: usize = TICK_LEN + TICK_GAP + CAP_H + LABEL_GAP + LINE_H + MARGIN;
const BAR_GAP: usize = 28;
const BAR_W: usize = 22;
const NAN_SWATCH_H: usize = 18;
const NAN_SWATCH_GAP: usize = 14;

/// Where everything goes; computed before anything is drawn, because margins depend on the tick
/// labels' widths.
struct Layout {
    /// The data cells.
    plot: Rect,
    /// The colour gradient.
    bar: Rect,
    /// The grey legend swatch for NaN cells, when there are any.
    nan_swatch: Option<Rect>,
    x_ticks: Vec<Tick>,
    y_ticks: Vec<Tick>,
    bar_ticks: Vec<Tick>,
    /// Values at the bottom and top of the colour scale.
    lo: f64,
    hi: f64,
}

/// Pixels given to `n` cells out of `available`: a whole number of pixels per cell when that
/// wastes little room (even cells look tidier), otherwise all of it.
fn fit_cells(n: usize, available: usize) -> usize {
    if n <= available {
        let whole = available / n * n;
        if whole * 100 >= available * 85 {
            return whole;
        }
    }
    available
}

fn layout(map: &HeatMap, stats: &ValueStats, y_label: &str, bar_label: &str) -> Layout {
    let available_h = HEIGHT - PLOT_TOP - PLOT_BOTTOM_MARGIN;
    let plot_h = fit_cells(map.n_y, available_h);
    let plot_bottom = PLOT_TOP + plot_h;

    let nan_swatch_h = if stats.nan_count > 0 {
        NAN_SWATCH_H + NAN_SWATCH_GAP
    } else {
        0
    };
    let bar_h = plot_h.saturating_sub(nan_swatch_h).max(1);
    let (lo, hi) = colour_range(stats);
    let mut bar = Rect {
        x: 0,
        y: PLOT_TOP,
        w: BAR_W,
        h: bar_h,
    };
    let bar_ticks = if stats.finite_range.is_some() {
        value_ticks(lo, hi, bar, 4 * CAP_H)
    } else {
        Vec::new()
    };
    let y_ticks = index_ticks(map.n_y, plot_h, PLOT_TOP, true, 2 * CAP_H + 12);

    let widest = |ticks: &[Tick]| {
        ticks
            .iter()
            .map(|t| text_width(&t.label))
            .max()
            .unwrap_or(0)
    };
    let side_label = |label: &str| {
        if label.is_empty() {
            0
        } else {
            LINE_H + LABEL_GAP
        }
    };
    let left = MARGIN + side_label(y_label) + widest(&y_ticks) + TICK_GAP + TICK_LEN + 1;
    let right = 1
        + BAR_GAP
        + BAR_W
        + TICK_LEN
        + TICK_GAP
        + widest(&bar_ticks).max(text_width("NaN"))
        + side_label(bar_label)
        + MARGIN;
    let available_w = WIDTH.saturating_sub(left + right).max(1);
    let plot_w = fit_cells(map.n_x, available_w);
    let plot_x = left + (available_w - plot_w) / 2;
    let plot = Rect {
        x: plot_x,
        y: PLOT_TOP,
        w: plot_w,
        h: plot_h,
    };

    bar.x = plot.right() + 1 + BAR_GAP;
    let nan_swatch = (stats.nan_count > 0).then_some(Rect {
        x: bar.x,
        y: plot_bottom - NAN_SWATCH_H,
        w: BAR_W,
        h: NAN_SWATCH_H,
    });

    let widest_x = text_width(&(map.n_x - 1).to_string());
    let x_ticks = index_ticks(map.n_x, plot_w, plot_x, false, widest_x + 40);
    Layout {
        plot,
        bar,
        nan_swatch,
        x_ticks,
        y_ticks,
        bar_ticks,
        lo,
        hi,
    }
}

/// The cells `lo..hi` shown by pixel `p` of `pixels` on an axis of `n` cells: one cell when
/// zooming in (nearest neighbour), several when there are more cells than pixels.
fn cell_span(p: usize, pixels: usize, n: usize) -> (usize, usize) {
    let lo = p * n / pixels;
    let hi = ((p + 1) * n / pixels).max(lo + 1);
    (lo, hi.min(n))
}

/// Value shown for a block of cells (several only when an axis has more cells than pixels): the
/// mean of its finite values, so a squeezed axis keeps its overall shape. Infinities decide only a
/// block without finite values (pinning it to an end of the scale), and NaN only an all-NaN block.
fn block_value(map: &HeatMap, xs: (usize, usize), ys: (usize, usize)) -> f64 {
    if xs.1 - xs.0 == 1 && ys.1 - ys.0 == 1 {
        return map.values[ys.0 * map.n_x + xs.0] as f64;
    }
    let (mut sum, mut finite, mut above, mut below) = (0.0f64, 0usize, 0usize, 0usize);
    for y in ys.0..ys.1 {
        for &v in &map.values[y * map.n_x + xs.0..y * map.n_x + xs.1] {
            if v.is_finite() {
                sum += v as f64;
                finite += 1;
            } else if v == f32::INFINITY {
                above += 1;
            } else if v == f32::NEG_INFINITY {
                below += 1;
            }
        }
    }
    if finite > 0 {
        sum / finite as f64
    } else if above + below == 0 {
        f64::NAN
    } else if above >= below {
        f64::INFINITY
    } else {
        f64::NEG_INFINITY
    }
}

// ---------------------------------------------------------------------------------------------
// Drawing

fn render(map: &HeatMap) -> Result<(Canvas, Layout), PlotError> {
    let expected = map.n_x.checked_mul(map.n_y);
    if map.n_x == 0 || map.n_y == 0 {
        return Err(PlotError::Empty {
            n_x: map.n_x,
            n_y: map.n_y,
        });
    }
    if expected != Some(map.values.len()) {
        return Err(PlotError::ShapeMismatch {
            len: map.values.len(),
            n_x: map.n_x,
            n_y: map.n_y,
        });
    }

    let title = to_ascii(map.title);
    let x_label = to_ascii(map.x_label);
    let y_label = to_ascii(map.y_label);
    let bar_label = to_ascii(map.colorbar_label);
    let stats = value_stats(map.values);
    let lay = layout(map, &stats, &y_label, &bar_label);
    let mut canvas = Canvas::new(WIDTH, HEIGHT, BACKGROUND);
    let plot = lay.plot;
    let span = lay.hi - lay.lo;
    let colour_of = |v: f64| {
        if v.is_nan() {
            NAN_GREY
        } else {
            viridis((v - lay.lo) / span)
        }
    };

    // Cells. Columns and rows of pixels map to cell spans once, not per pixel.
    let x_spans: Vec<_> = (0..plot.w).map(|p| cell_span(p, plot.w, map.n_x)).collect();
    for py in 0..plot.h {
        // Pixel rows count down from the top; cell rows count up from the bottom.
        let ys = cell_span(plot.h - 1 - py, plot.h, map.n_y);
        for (px, &xs) in x_spans.iter().enumerate() {
            let colour = colour_of(block_value(map, xs, ys));
            canvas.put((plot.x + px) as i64, (plot.y + py) as i64, colour);
        }
    }
    canvas.frame_around(plot, INK);

    // X axis: ticks below the frame, labels centred under them, axis label centred under all.
    let below = plot.bottom() as i64 + 1;
    for tick in &lay.x_ticks {
        for d in 0..TICK_LEN as i64 {
            canvas.put(tick.at as i64, below + d, INK);
        }
        let x = tick.at as i64 - (text_width(&tick.label) / 2) as i64;
        canvas.text(x, below + (TICK_LEN + TICK_GAP) as i64, &tick.label, INK);
    }
    let x_label_y = below + (TICK_LEN + TICK_GAP + CAP_H + LABEL_GAP) as i64;
    let x_label_x = plot.x as i64 + (plot.w as i64 - text_width(&x_label) as i64) / 2;
    canvas.text(x_label_x, x_label_y, &x_label, INK);

    // Y axis: ticks left of the frame, labels right-aligned against them.
    // The axis label keeps a fixed gap to the widest tick label, wherever centring put the plot.
    let left_of = plot.x as i64 - 2;
    let labels_right = left_of - (TICK_LEN + TICK_GAP - 1) as i64;
    let mut labels_left = labels_right;
    for tick in &lay.y_ticks {
        for d in 0..TICK_LEN as i64 {
            canvas.put(left_of - d, tick.at as i64, INK);
        }
        let x = labels_right - text_width(&tick.label) as i64;
        labels_left = labels_left.min(x);
        canvas.text(x, tick.at as i64 - (CAP_H / 2) as i64, &tick.label, INK);
    }
    let y_label_x = labels_left - (LABEL_GAP + LINE_H) as i64;
    let y_label_bottom = plot.y as i64 + (plot.h + text_width(&y_label)) as i64 / 2;
    canvas.text_up(y_label_x, y_label_bottom, &y_label, INK);

    // Colour bar, with ticks and labels on its right.
    let bar = lay.bar;
    let bar_labels_x = (bar.right() + 1 + TICK_LEN + TICK_GAP) as i64;
    if stats.finite_range.is_some() {
        for py in 0..bar.h {
            let t = if bar.h > 1 {
                (bar.h - 1 - py) as f64 / (bar.h - 1) as f64
            } else {
                0.5
            };
            canvas.fill(bar.x as i64, (bar.y + py) as i64, bar.w, 1, viridis(t));
        }
        canvas.frame_around(bar, INK);
        for tick in &lay.bar_ticks {
            for d in 0..TICK_LEN as i64 {
                canvas.put(bar.right() as i64 + 1 + d, tick.at as i64, INK);
            }
            canvas.text(
                bar_labels_x,
                tick.at as i64 - (CAP_H / 2) as i64,
                &tick.label,
                INK,
            );
        }
    }
    let mut widest_bar_label = lay
        .bar_ticks
        .iter()
        .map(|t| text_width(&t.label))
        .max()
        .unwrap_or(0);
    if let Some(swatch) = lay.nan_swatch {
        canvas.fill(
            swatch.x as i64,
            swatch.y as i64,
            swatch.w,
            swatch.h,
            NAN_GREY,
        );
        canvas.frame_around(swatch, INK);
        let y = swatch.y as i64 + (swatch.h as i64 - CAP_H as i64) / 2;
        canvas.text(bar_labels_x, y, "NaN", INK);
        widest_bar_label = widest_bar_label.max(text_width("NaN"));
    }
    if stats.finite_range.is_some() && !bar_label.is_empty() {
        let x = bar_labels_x + (widest_bar_label + LABEL_GAP) as i64;
        let bottom = bar.y as i64 + bar.h as i64 / 2 + text_width(&bar_label) as i64 / 2;
        canvas.text_up(x, bottom, &bar_label, INK);
    }

    // Without a single finite value there is no scale to show; say so where the data would be.
    if stats.finite_range.is_none() {
        let note = if stats.nan_count == map.values.len() {
            "all values are NaN"
        } else {
            "no finite values"
        };
        let x = plot.x as i64 + (plot.w as i64 - text_width(note) as i64) / 2;
        let y = plot.y as i64 + (plot.h as i64 - CAP_H as i64) / 2;
        canvas.fill(x - 6, y - 6, text_width(note) + 12, CAP_H + 12, BACKGROUND);
        canvas.text(x, y, note, INK);
    }

    // Title, centred over the plot when it fits there, else over the whole figure.
    let title = truncate_middle(&title, (WIDTH - 2 * MARGIN + SCALE) / ADVANCE);
    let title_w = text_width(&title) as i64;
    let centre = if title_w <= plot.w as i64 {
        plot.x as i64 + plot.w as i64 / 2
    } else {
        WIDTH as i64 / 2
    };
    let title_x = (centre - title_w / 2)
        .min(WIDTH as i64 - MARGIN as i64 - title_w)
        .max(MARGIN as i64);
    canvas.text(title_x, TITLE_TOP as i64, &title, INK);

    Ok((canvas, lay))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map<'a>(values: &'a [f32], n_x: usize, n_y: usize, title: &'a str) -> HeatMap<'a> {
        HeatMap {
            values,
            n_x,
            n_y,
            title,
            x_label: "segment",
            y_label: "mel band",
            colorbar_label: "dB",
        }
    }

    /// Decodes PNG bytes with the png crate: (width, height, RGB bytes).
    fn decode(bytes: &[u8]) -> (usize, usize, Vec<u8>) {
        let decoder = png::Decoder::new(bytes);
        let mut reader = decoder.read_info().expect("PNG header");
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).expect("PNG frame");
        assert_eq!(info.color_type, png::ColorType::Rgb);
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        buf.truncate(info.buffer_size());
        (info.width as usize, info.height as usize, buf)
    }

    fn rgb_at(rgb: &[u8], x: usize, y: usize) -> Rgb {
        let i = (y * WIDTH + x) * 3;
        [rgb[i], rgb[i + 1], rgb[i + 2]]
    }

    /// Centre pixel of cell (x, y), y counted from the bottom.
    fn cell_centre(lay: &Layout, n_x: usize, n_y: usize, x: usize, y: usize) -> (usize, usize) {
        let p = lay.plot;
        let px = p.x + ((x as f64 + 0.5) * p.w as f64 / n_x as f64) as usize;
        let py = p.bottom() - 1 - ((y as f64 + 0.5) * p.h as f64 / n_y as f64) as usize;
        (px, py)
    }

    fn is_dark(c: Rgb) -> bool {
        c.iter().all(|&v| v < 80)
    }

    fn dark_pixels(canvas: &Canvas, x0: usize, x1: usize, y0: usize, y1: usize) -> usize {
        let mut n = 0;
        for y in y0..y1 {
            for x in x0..x1 {
                n += is_dark(canvas.pixel(x, y)) as usize;
            }
        }
        n
    }

    /// A chirp-like test pattern in dB: a ridge rising through the bands, with some NaN columns
    /// as a failed stretch would give.
    fn chirp(n_x: usize, n_y: usize, nan_columns: std::ops::Range<usize>) -> Vec<f32> {
        let mut values = vec![0.0f32; n_x * n_y];
        for y in 0..n_y {
            for x in 0..n_x {
                let ridge = (x as f32 / n_x as f32).powi(2) * (n_y - 1) as f32;
                let d = y as f32 - ridge;
                let floor = -80.0 + 6.0 * ((x as f32 * 0.3).sin() + (y as f32 * 0.7).cos());
                values[y * n_x + x] = if nan_columns.contains(&x) {
                    f32::NAN
                } else {
                    floor.max(-3.0 * d * d + 5.0 - 0.2 * y as f32)
                };
            }
        }
        values
    }

    #[test]
    fn png_decodes_to_the_declared_size() {
        let values = chirp(237, 32, 100..104);
        let bytes = render_png(&map(&values, 237, 32, "clip.wav - log-mel (dB)")).unwrap();
        let (w, h, rgb) = decode(&bytes);
        assert_eq!((w, h), (WIDTH, HEIGHT));
        assert_eq!(rgb.len(), WIDTH * HEIGHT * 3);
    }

    #[test]
    fn extreme_cells_take_the_ends_of_the_colormap_low_band_at_the_bottom() {
        // 4 × 3 ramp: the minimum is cell (0, 0), the maximum cell (3, 2).
        let values: Vec<f32> = (0..12).map(|i| -60.0 + 5.0 * i as f32).collect();
        let m = map(&values, 4, 3, "ramp");
        let (_, lay) = render(&m).unwrap();
        let (_, _, rgb) = decode(&render_png(&m).unwrap());
        let (x, y) = cell_centre(&lay, 4, 3, 0, 0);
        assert_eq!(rgb_at(&rgb, x, y), VIRIDIS[0]);
        let (x, y) = cell_centre(&lay, 4, 3, 3, 2);
        assert_eq!(rgb_at(&rgb, x, y), VIRIDIS[10]);
        // Row 0 is drawn below row 2.
        assert!(cell_centre(&lay, 4, 3, 0, 0).1 > cell_centre(&lay, 4, 3, 0, 2).1);
        // The bar runs from the low colour at its bottom to the high colour at its top.
        let bar = lay.bar;
        assert_eq!(
            rgb_at(&rgb, bar.x + bar.w / 2, bar.bottom() - 1),
            VIRIDIS[0]
        );
        assert_eq!(rgb_at(&rgb, bar.x + bar.w / 2, bar.y), VIRIDIS[10]);
        assert!(lay.nan_swatch.is_none());
    }

    #[test]
    fn nan_cells_are_grey_and_named_in_the_legend() {
        let values = chirp(237, 32, 100..104);
        let m = map(&values, 237, 32, "with NaN");
        let (canvas, lay) = render(&m).unwrap();
        let (x, y) = cell_centre(&lay, 237, 32, 101, 10);
        assert_eq!(canvas.pixel(x, y), NAN_GREY);
        let (x, y) = cell_centre(&lay, 237, 32, 99, 10);
        assert_ne!(canvas.pixel(x, y), NAN_GREY);
        let swatch = lay.nan_swatch.expect("a NaN swatch");
        assert_eq!(canvas.pixel(swatch.x + 3, swatch.y + 3), NAN_GREY);
        // "NaN" is written beside the swatch, and the gradient stops above it.
        let text_x = swatch.right() + 1 + TICK_LEN + TICK_GAP;
        let label = dark_pixels(&canvas, text_x, text_x + 40, swatch.y, swatch.bottom());
        assert!(label > 20, "{label} dark pixels beside the swatch");
        assert!(lay.bar.bottom() < swatch.y);
    }

    #[test]
    fn title_and_axis_labels_are_drawn() {
        let values = chirp(237, 32, 0..0);
        let (canvas, lay) =
            render(&map(&values, 237, 32, "machine_07/id_03/clip_000123.wav")).unwrap();
        let title = dark_pixels(&canvas, 0, WIDTH, TITLE_TOP, TITLE_TOP + LINE_H);
        assert!(title > 200, "{title} dark pixels in the title band");
        let below = dark_pixels(
            &canvas,
            lay.plot.x,
            lay.plot.right(),
            lay.plot.bottom() + 2,
            HEIGHT,
        );
        assert!(
            below > 200,
            "{below} dark pixels under the plot (x ticks, labels)"
        );
        let left = dark_pixels(&canvas, 0, lay.plot.x - 1, lay.plot.y, lay.plot.bottom());
        assert!(
            left > 200,
            "{left} dark pixels left of the plot (y ticks, labels)"
        );
        let (bar_x0, bar_x1) = (lay.bar.right() + 2, WIDTH);
        let bar = dark_pixels(&canvas, bar_x0, bar_x1, lay.bar.y, lay.bar.bottom());
        assert!(bar > 200, "{bar} dark pixels right of the colour bar");

        // Without a title the band stays blank, so the count above measures the title.
        let (blank, _) = render(&map(&values, 237, 32, "")).unwrap();
        assert_eq!(
            dark_pixels(&blank, 0, WIDTH, TITLE_TOP, TITLE_TOP + LINE_H),
            0
        );
    }

    #[test]
    fn ticks_use_round_steps_and_stay_inside_their_axes() {
        let values = chirp(237, 32, 0..0);
        let (_, lay) = render(&map(&values, 237, 32, "t")).unwrap();
        let labels = |t: &[Tick]| t.iter().map(|t| t.label.clone()).collect::<Vec<_>>();
        assert_eq!(
            labels(&lay.y_ticks),
            ["0", "5", "10", "15", "20", "25", "30"]
        );
        let x = labels(&lay.x_ticks);
        assert_eq!(x.first().map(String::as_str), Some("0"));
        assert!(x.len() >= 4 && x.len() <= 12, "{x:?}");
        for t in &lay.x_ticks {
            assert!(t.at >= lay.plot.x && t.at < lay.plot.right());
        }
        for t in &lay.y_ticks {
            assert!(t.at >= lay.plot.y && t.at < lay.plot.bottom());
        }
        // Higher dB sits higher on the bar.
        let bar: Vec<f64> = lay
            .bar_ticks
            .iter()
            .map(|t| t.label.parse().unwrap())
            .collect();
        assert!(bar.len() >= 3, "{bar:?}");
        assert!(lay.bar_ticks.windows(2).all(|w| w[0].at > w[1].at));
        assert!(bar.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn index_steps_are_1_2_5_multiples() {
        assert_eq!(index_step(1, 5), 1);
        assert_eq!(index_step(10, 20), 1);
        assert_eq!(index_step(32, 13), 5);
        assert_eq!(index_step(237, 10), 25);
        assert_eq!(index_step(6873, 10), 1000);
        assert_eq!(index_step(usize::MAX, 1), usize::MAX);
    }

    #[test]
    fn value_labels_are_distinct_and_clean() {
        let bar = Rect {
            x: 0,
            y: 0,
            w: 10,
            h: 400,
        };
        let labels: Vec<String> = value_ticks(-83.2, 4.1, bar, 48)
            .into_iter()
            .map(|t| t.label)
            .collect();
        assert_eq!(labels, ["-80", "-60", "-40", "-20", "0"]);
        let labels: Vec<String> = value_ticks(-0.26, 0.26, bar, 48)
            .into_iter()
            .map(|t| t.label)
            .collect();
        assert!(
            labels.contains(&"0.0".to_string()) || labels.contains(&"0.00".to_string()),
            "{labels:?}"
        );
        assert!(!labels
            .iter()
            .any(|l| l.starts_with("-0") && l.trim_start_matches(['-', '0', '.']).is_empty()));
        let quarters: Vec<String> = value_ticks(0.0, 180.0, bar, 48)
            .into_iter()
            .map(|t| t.label)
            .collect();
        assert_eq!(
            quarters,
            ["0", "25", "50", "75", "100", "125", "150", "175"]
        );
        let fine: Vec<String> = value_ticks(0.1, 1.9, bar, 48)
            .into_iter()
            .map(|t| t.label)
            .collect();
        assert_eq!(
            fine,
            ["0.25", "0.50", "0.75", "1.00", "1.25", "1.50", "1.75"]
        );
        assert_eq!(nice_step(0.0).0, 0.0);
        assert!(value_ticks(1.0, 1.0, bar, 48).is_empty());
        let huge: Vec<String> = value_ticks(1e30, 3e30, bar, 48)
            .into_iter()
            .map(|t| t.label)
            .collect();
        assert!(huge.len() >= 2);
        let mut unique = huge.clone();
        unique.dedup();
        assert_eq!(unique, huge, "labels must differ: {huge:?}");
    }

    #[test]
    fn single_row_and_single_column_render() {
        for (n_x, n_y) in [(1, 32), (237, 1), (1, 1)] {
            let values: Vec<f32> = (0..n_x * n_y).map(|i| i as f32).collect();
            let m = map(&values, n_x, n_y, "thin");
            let (canvas, lay) = render(&m).unwrap();
            assert_eq!(lay.x_ticks.len().min(1), 1);
            assert_eq!(lay.y_ticks.len().min(1), 1);
            let (x, y) = cell_centre(&lay, n_x, n_y, 0, 0);
            let expected = if n_x * n_y == 1 {
                viridis(0.5)
            } else {
                VIRIDIS[0]
            };
            assert_eq!(canvas.pixel(x, y), expected, "{n_x} x {n_y}");
            let (w, h, _) = decode(&render_png(&m).unwrap());
            assert_eq!((w, h), (WIDTH, HEIGHT));
        }
    }

    #[test]
    fn equal_values_sit_mid_scale() {
        let values = vec![-42.0f32; 20 * 8];
        let (canvas, lay) = render(&map(&values, 20, 8, "flat")).unwrap();
        let (x, y) = cell_centre(&lay, 20, 8, 3, 4);
        assert_eq!(canvas.pixel(x, y), viridis(0.5));
        assert!(!lay.bar_ticks.is_empty());
        assert!(lay.lo < -42.0 && lay.hi > -42.0);
    }

    #[test]
    fn all_nan_is_grey_with_a_note() {
        let values = vec![f32::NAN; 30 * 4];
        let (canvas, lay) = render(&map(&values, 30, 4, "failed file")).unwrap();
        assert_eq!(canvas.pixel(lay.plot.x + 2, lay.plot.y + 2), NAN_GREY);
        assert!(lay.bar_ticks.is_empty());
        assert!(lay.nan_swatch.is_some());
        let p = lay.plot;
        let mid = dark_pixels(
            &canvas,
            p.x,
            p.right(),
            p.y + p.h / 2 - 10,
            p.y + p.h / 2 + 10,
        );
        assert!(mid > 50, "the 'all values are NaN' note: {mid} dark pixels");
        assert!(render_png(&map(&values, 30, 4, "failed file")).is_ok());
    }

    #[test]
    fn infinities_pin_to_the_ends_and_do_not_stretch_the_scale() {
        let mut values: Vec<f32> = (0..8).map(|i| -10.0 * i as f32).collect();
        values[0] = f32::INFINITY;
        values[7] = f32::NEG_INFINITY;
        let (canvas, lay) = render(&map(&values, 8, 1, "inf")).unwrap();
        assert_eq!((lay.lo, lay.hi), (-60.0, -10.0));
        let (x, y) = cell_centre(&lay, 8, 1, 0, 0);
        assert_eq!(canvas.pixel(x, y), VIRIDIS[10]);
        let (x, y) = cell_centre(&lay, 8, 1, 7, 0);
        assert_eq!(canvas.pixel(x, y), VIRIDIS[0]);

        // Squeezed onto fewer pixels than cells, a block with a finite value shows its mean and
        // a block of only infinities an end of the scale; neither is NaN grey.
        let (n_x, n_y) = (4000, 2);
        let mut values = vec![-20.0f32; n_x * n_y];
        values[..n_x / 2].fill(f32::INFINITY);
        values[n_x / 2..n_x / 2 + 5].fill(f32::NEG_INFINITY);
        let (canvas, lay) = render(&map(&values, n_x, n_y, "squeezed inf")).unwrap();
        let low_row = lay.plot.bottom() - 2;
        assert_eq!(canvas.pixel(lay.plot.x + 1, low_row), VIRIDIS[10]);
        assert!(lay.nan_swatch.is_none());
        for x in lay.plot.x..lay.plot.right() {
            assert_ne!(canvas.pixel(x, low_row), NAN_GREY);
        }

        let only_inf = [f32::INFINITY, f32::NEG_INFINITY];
        assert!(render_png(&map(&only_inf, 2, 1, "inf only")).is_ok());
    }

    #[test]
    fn more_columns_than_pixels_are_averaged() {
        // Unpooled features: 237 segments × 29 frames flattened onto x.
        let (n_x, n_y) = (237 * 29, 32);
        let values: Vec<f32> = (0..n_x * n_y)
            .map(|i| if i % n_x < n_x / 2 { -70.0 } else { -10.0 })
            .collect();
        let (canvas, lay) = render(&map(&values, n_x, n_y, "unpooled")).unwrap();
        assert!(lay.plot.w < n_x);
        assert_eq!(canvas.pixel(lay.plot.x + 1, lay.plot.y + 5), VIRIDIS[0]);
        assert_eq!(
            canvas.pixel(lay.plot.right() - 2, lay.plot.y + 5),
            VIRIDIS[10]
        );
    }

    #[test]
    fn bad_shapes_are_errors() {
        let values = [1.0f32; 6];
        assert!(matches!(
            render_png(&map(&[], 0, 32, "")),
            Err(PlotError::Empty { .. })
        ));
        assert!(matches!(
            render_png(&map(&values, 6, 0, "")),
            Err(PlotError::Empty { .. })
        ));
        assert!(matches!(
            render_png(&map(&values, 4, 2, "")),
            Err(PlotError::ShapeMismatch {
                len: 6,
                n_x: 4,
                n_y: 2
            })
        ));
        assert!(matches!(
            render_png(&map(&values, usize::MAX, 2, "")),
            Err(PlotError::ShapeMismatch { .. })
        ));
        let message = render_png(&map(&values, 4, 2, "")).unwrap_err().to_string();
        assert!(message.contains("6 values"), "{message}");
    }

    #[test]
    fn long_titles_keep_both_ends() {
        let long = format!(
            "machine_07/{}/clip_000123.wav - log-mel (dB)",
            "x".repeat(200)
        );
        let short = truncate_middle(&long, 80);
        assert_eq!(short.chars().count(), 80);
        assert!(short.starts_with("machine_07/"));
        assert!(short.ends_with("clip_000123.wav - log-mel (dB)"));
        assert!(short.contains("..."));
        assert_eq!(truncate_middle("short", 80), "short");
        let (canvas, _) = render(&map(&[0.0, 1.0], 2, 1, &long)).unwrap();
        assert!(dark_pixels(&canvas, 0, WIDTH, TITLE_TOP, TITLE_TOP + LINE_H) > 200);
    }

    /// Writes sample figures for a person to look at:
    /// `cargo test -p melpipe plot::tests::demo -- --ignored`, then open /tmp/plot_demo*.png.
    #[test]
    #[ignore]
    fn demo() {
        let values = chirp(237, 32, 150..158);
        let m = HeatMap {
            title: "machine_07/id_03/clip_000123.wav \u{2014} log-mel (dB)",
            ..map(&values, 237, 32, "")
        };
        std::fs::write("/tmp/plot_demo.png", render_png(&m).unwrap()).unwrap();

        let (n_x, n_y) = (237 * 29, 32);
        let values = chirp(n_x, n_y, 0..0);
        let m = map(&values, n_x, n_y, "unpooled: 237 segments x 29 frames");
        std::fs::write("/tmp/plot_demo_unpooled.png", render_png(&m).unwrap()).unwrap();

        let values = [-42.0f32];
        let m = map(&values, 1, 1, "one cell, -42 dB");
        std::fs::write("/tmp/plot_demo_single.png", render_png(&m).unwrap()).unwrap();

        let values: Vec<f32> = (0..15).map(|i| -60.0 + 4.5 * i as f32).collect();
        let m = map(&values, 5, 3, "5 x 3 ramp");
        std::fs::write("/tmp/plot_demo_small.png", render_png(&m).unwrap()).unwrap();

        let values = vec![f32::NAN; 237 * 32];
        let m = map(
            &values,
            237,
            32,
            "machine_01/id_00/broken.wav \u{2014} log-mel (dB)",
        );
        std::fs::write("/tmp/plot_demo_nan.png", render_png(&m).unwrap()).unwrap();

        // Close-ups (3x) of the lower-left corner and the colour bar, to check ticks pixel by pixel.
        let values = chirp(237, 32, 150..158);
        let (full, lay) = render(&map(&values, 237, 32, "")).unwrap();
        let zoom = |x0: usize, y0: usize, w: usize, h: usize, path: &str| {
            let mut z = Canvas::new(w * 3, h * 3, BACKGROUND);
            for y in 0..h * 3 {
                for x in 0..w * 3 {
                    z.put(x as i64, y as i64, full.pixel(x0 + x / 3, y0 + y / 3));
                }
            }
            std::fs::write(path, z.encode_png().unwrap()).unwrap();
        };
        zoom(
            0,
            lay.plot.bottom() - 120,
            300,
            HEIGHT - lay.plot.bottom() + 120,
            "/tmp/plot_zoom_corner.png",
        );
        zoom(
            lay.plot.right() - 60,
            lay.plot.y - 10,
            WIDTH - lay.plot.right() + 60,
            180,
            "/tmp/plot_zoom_bar.png",
        );
        zoom(
            lay.plot.right() - 60,
            lay.plot.bottom() - 120,
            WIDTH - lay.plot.right() + 60,
            160,
            "/tmp/plot_zoom_nan.png",
        );

        let mut canvas = Canvas::new(WIDTH, 200, BACKGROUND);
        let all: String = (0x20u8..0x7F).map(|b| b as char).collect();
        for (i, line) in all.as_bytes().chunks(48).enumerate() {
            let line = std::str::from_utf8(line).unwrap();
            canvas.text(10, 10 + 30 * i as i64, line, INK);
        }
        canvas.text(
            10,
            110,
            "Sphinx of black quartz, judge my vow: -12.5 dB",
            INK,
        );
        canvas.text_up(900, 190, "mel band (up)", INK);
        std::fs::write("/tmp/plot_demo_font.png", canvas.encode_png().unwrap()).unwrap();
    }
}
