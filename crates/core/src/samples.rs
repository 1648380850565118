//! The sample storage of a batch: f32 values in [-1, 1), or the raw 16-bit integers of PCM16
//! files (value / 32768) for a backend that scales them itself (the GPU: half the bytes to read,
//! copy and upload).
//!
//! The memory is page-aligned and a whole number of pages, owned by this buffer alone, so a GPU
//! backend can page-lock it in place ([`SampleBuf::set_pin`]): reader threads then decode
//! straight into memory the device copies from, with no staging copy. A pin is dropped before
//! the memory moves or is freed.

use std::alloc::{self, Layout};
use std::any::Any;
use std::ptr::NonNull;

/// Alignment and granularity of the allocation.
const PAGE: usize = 4096;

/// What a batch's samples are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleKind {
    /// f32 in [-1, 1).
    F32,
    /// Raw PCM16 values; the sample is value / 32768.
    I16,
}

impl SampleKind {
    /// Bytes per sample.
    pub fn size(self) -> usize {
        match self {
            SampleKind::F32 => 4,
            SampleKind::I16 => 2,
        }
    }
}

/// A borrowed view of a [`SampleBuf`]'s samples.
#[derive(Clone, Copy, Debug)]
pub enum SampleView<'a> {
    /// f32 in [-1, 1).
    F32(&'a [f32]),
    /// Raw PCM16 values.
    I16(&'a [i16]),
}

/// Something that keeps a buffer's memory page-locked until dropped (a GPU registration).
pub type Pin = Box<dyn Any + Send + Sync>;

/// Growable, page-aligned sample storage (see the module documentation).
pub struct SampleBuf {
    /// The allocation, or (capacity 0) a dangling pointer aligned for f32 and i16.
    ptr: NonNull<u8>,
    /// Bytes allocated (a multiple of [`PAGE`]; 0: nothing allocated).
    cap: usize,
    /// Samples held.
    len: usize,
    kind: SampleKind,
    pin: Option<Pin>,
}

// SAFETY: SampleBuf owns its allocation exclusively (like a Vec<u8>); the pin is Send + Sync.
unsafe impl Send for SampleBuf {}
// SAFETY: shared access only reads.
unsafe impl Sync for SampleBuf {}

impl Default for SampleBuf {
    fn default() -> Self {
        SampleBuf {
            ptr: NonNull::<f32>::dangling().cast(),
            cap: 0,
            len: 0,
            kind: SampleKind::F32,
            pin: None,
        }
    }
}

impl std::fmt::Debug for SampleBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SampleBuf")
            .field("kind", &self.kind)
            .field("len", &self.len)
            .field("cap_bytes", &self.cap)
            .field("pinned", &self.pin.is_some())
            .finish()
    }
}

impl Drop for SampleBuf {
    fn drop(&mut self) {
        self.pin = None;
        self.free();
    }
}

impl SampleBuf {
    /// An empty f32 buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// What the samples are.
    pub fn kind(&self) -> SampleKind {
        self.kind
    }

    /// Samples held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no sample is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Empties the buffer and sets what it will hold; the memory (and its pin) is kept.
    pub fn clear(&mut self, kind: SampleKind) {
        self.len = 0;
        self.kind = kind;
    }

    /// Drops samples past `len`.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// The samples, whichever their kind.
    pub fn view(&self) -> SampleView<'_> {
        match (self.f32s(), self.i16s()) {
            (Some(f), _) => SampleView::F32(f),
            (None, Some(i)) => SampleView::I16(i),
            (None, None) => SampleView::F32(&[]),
        }
    }

    /// The samples as f32, or `None` when they are PCM16 values.
    pub fn f32s(&self) -> Option<&[f32]> {
        (self.kind == SampleKind::F32).then(|| {
            // SAFETY: len f32 values were written (extend zero-fills) inside the allocation,
            // which is page-aligned; a dangling pointer with len 0 is a valid empty slice.
            unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().cast::<f32>(), self.len) }
        })
    }

    /// The samples as PCM16 values, or `None` when they are f32.
    pub fn i16s(&self) -> Option<&[i16]> {
        (self.kind == SampleKind::I16).then(|| {
            // SAFETY: as for f32s.
            unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().cast::<i16>(), self.len) }
        })
    }

    /// The samples' bytes (native endianness), for an upload.
    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: len × size bytes were written inside the allocation.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len * self.kind.size()) }
    }

    /// Appends `n` zero f32 samples and returns them. The buffer must hold f32.
    pub fn extend_f32(&mut self, n: usize) -> &mut [f32] {
        assert_eq!(self.kind, SampleKind::F32, "extend_f32 on a PCM16 buffer");
        // SAFETY: the buffer holds f32 (checked above), 4 bytes each.
        unsafe { self.extend_zeroed::<f32>(n) }
    }

    /// Appends `n` zero PCM16 samples and returns them. The buffer must hold PCM16 values.
    pub fn extend_i16(&mut self, n: usize) -> &mut [i16] {
        assert_eq!(self.kind, SampleKind::I16, "extend_i16 on an f32 buffer");
        // SAFETY: the buffer holds PCM16 (checked above), 2 bytes each.
        unsafe { self.extend_zeroed::<i16>(n) }
    }

    /// Appends `n` zero samples of type `T` and returns them.
    ///
    /// # Safety
    /// `T` must be the type of this buffer's kind (`size_of::<T>() == self.kind.size()`), a
    /// plain number type for which all-zero bytes are a valid value.
    unsafe fn extend_zeroed<T>(&mut self, n: usize) -> &mut [T] {
        debug_assert_eq!(std::mem::size_of::<T>(), self.kind.size());
        let at = self.grow(n);
        // SAFETY: grow made room for len + n samples in the page-aligned allocation (aligned
        // for T); the range is zero-filled first, so every value is initialised before a slice
        // of T is formed over it.
        unsafe {
            let p = self.ptr.as_ptr().cast::<T>().add(at);
            std::ptr::write_bytes(p, 0, n);
            std::slice::from_raw_parts_mut(p, n)
        }
    }

    /// Appends `n` PCM16 samples whose leading bytes `fill` writes in place: it gets the new
    /// samples' memory (`2n` bytes, not yet initialised, native endianness) and returns how many
    /// bytes from its start it wrote; the rest are zeroed (an odd count keeps the written byte
    /// of a half-written sample). A reader can so `pread` a file's samples straight into a
    /// (page-locked) batch. When `fill` fails nothing is appended, though the room stays
    /// reserved (the memory may have moved, and lost its pin, as any growth does).
    ///
    /// # Safety
    /// `fill` may write only inside the `2n` bytes it gets, and must have written every byte
    /// of the count it returns (a larger count is taken as `2n`).
    pub unsafe fn extend_i16_by<E>(
        &mut self,
        n: usize,
        fill: impl FnOnce(*mut u8, usize) -> Result<usize, E>,
    ) -> Result<usize, E> {
        assert_eq!(self.kind, SampleKind::I16, "extend_i16_by on an f32 buffer");
        let bytes = n
            .checked_mul(2)
            .expect("sample buffer size overflows usize");
        self.reserve(n);
        let at = self.len;
        // SAFETY: reserve made room for len + n samples of 2 bytes in the allocation.
        let p = unsafe { self.ptr.as_ptr().add(at * 2) };
        let wrote = fill(p, bytes)?.min(bytes);
        // SAFETY: [wrote, bytes) lies inside the room reserved above; the bytes before it were
        // written by `fill` (the caller's promise), so all 2n bytes are initialised now.
        unsafe { std::ptr::write_bytes(p.add(wrote), 0, bytes - wrote) };
        self.len = at + n;
        Ok(wrote)
    }

    /// Appends `n` samples of this buffer's kind that `fill` writes in place, all of them: it
    /// gets the new samples' memory (`n × size` bytes, not yet initialised, aligned for the
    /// kind) and their byte count. Nothing is zeroed first, so a caller that writes every
    /// sample (on several threads, say) pays one pass over the memory, not two. When `fill`
    /// fails nothing is appended, though the room stays reserved.
    ///
    /// # Safety
    /// `fill` may write only inside the bytes it gets, and must have written every one of them
    /// when it returns `Ok`.
    pub unsafe fn extend_by<E>(
        &mut self,
        n: usize,
        fill: impl FnOnce(*mut u8, usize) -> Result<(), E>,
    ) -> Result<(), E> {
        let size = self.kind.size();
        let bytes = n
            .checked_mul(size)
            .expect("sample buffer size overflows usize");
        self.reserve(n);
        let at = self.len;
        // SAFETY: reserve made room for len + n samples in the page-aligned allocation.
        let p = unsafe { self.ptr.as_ptr().add(at * size) };
        fill(p, bytes)?;
        // Every byte of the n samples was written (the caller's promise).
        self.len = at + n;
        Ok(())
    }

    /// Appends `n` f32 samples made from PCM16 values that `fill` writes in place, as
    /// [`Self::extend_i16_by`] does for a PCM16 buffer: `fill` gets `2n` bytes (the upper half
    /// of the new samples' memory) for the raw values, which are then scaled (value / 32768,
    /// as the WAV decoder does) front to back into the whole room; samples past the bytes it
    /// wrote are zero (an odd count drops the half-written sample). When `fill` fails nothing
    /// is appended, though the room stays reserved.
    ///
    /// # Safety
    /// As for [`Self::extend_i16_by`].
    pub unsafe fn extend_f32_from_pcm16_by<E>(
        &mut self,
        n: usize,
        fill: impl FnOnce(*mut u8, usize) -> Result<usize, E>,
    ) -> Result<usize, E> {
        assert_eq!(
            self.kind,
            SampleKind::F32,
            "extend_f32_from_pcm16_by on a PCM16 buffer"
        );
        let bytes = n
            .checked_mul(2)
            .expect("sample buffer size overflows usize");
        self.reserve(n);
        let at = self.len;
        // SAFETY: reserve made room for len + n samples of 4 bytes; the raw values go to the
        // upper 2n of their 4n bytes, 2-aligned (the allocation is page-aligned).
        let (out, raw) = unsafe {
            let out = self.ptr.as_ptr().add(at * 4).cast::<f32>();
            (out, out.cast::<u8>().add(bytes))
        };
        let wrote = fill(raw, bytes)?.min(bytes);
        let values = wrote / 2;
        // Front to back, a block at a time through a copy on the stack, so the scaling is a
        // straight loop over two slices that the compiler vectorizes.
        const BLOCK: usize = 1024;
        let mut block = [0i16; BLOCK];
        let mut i = 0;
        while i < values {
            let m = BLOCK.min(values - i);
            // SAFETY: raw values i..i + m (bytes 2n + 2i .. 2n + 2(i + m), written by `fill`)
            // are copied out before f32 samples i..i + m (bytes 4i .. 4(i + m)) are written,
            // and those end at or before the first value not yet copied: 4(i + m) <= 2n +
            // 2(i + m) as i + m <= n. The samples are taken as MaybeUninit (the room may be
            // fresh memory) and only written.
            let dst = unsafe {
                std::ptr::copy_nonoverlapping(raw.cast::<i16>().add(i), block.as_mut_ptr(), m);
                std::slice::from_raw_parts_mut(out.add(i).cast::<std::mem::MaybeUninit<f32>>(), m)
            };
            for (o, &v) in dst.iter_mut().zip(&block[..m]) {
                o.write(f32::from(v) * (1.0 / 32768.0));
            }
            i += m;
        }
        // SAFETY: samples values..n lie inside the room reserved above.
        unsafe { std::ptr::write_bytes(out.add(values), 0, n - values) };
        self.len = at + n;
        Ok(wrote)
    }

    /// Appends f32 samples (tests, examples). The buffer must hold f32.
    pub fn extend_from_slice(&mut self, values: &[f32]) {
        self.extend_f32(values.len()).copy_from_slice(values);
    }

    /// Converts PCM16 content to f32 in place (value / 32768, as the WAV decoder does).
    pub fn convert_to_f32(&mut self) {
        if self.kind == SampleKind::F32 {
            return;
        }
        let n = self.len;
        self.len = 0;
        self.kind = SampleKind::F32;
        // Room for n f32 values: the i16 content (first 2n bytes) survives a regrowth.
        self.reserve_bytes(4 * n, 2 * n);
        let base = self.ptr.as_ptr();
        // Back to front: f32 i ends at byte 4i + 4 > 2i + 2, so a value is read before the
        // wider writes reach it.
        for i in (0..n).rev() {
            // SAFETY: both offsets lie inside the allocation of at least 4n bytes; i16 i is
            // read before any write at or past byte 2i (writes go to bytes ≥ 4i ≥ 2i, and
            // later iterations write lower offsets only after reading theirs).
            unsafe {
                let v = base.cast::<i16>().add(i).read();
                base.cast::<f32>()
                    .add(i)
                    .write(f32::from(v) * (1.0 / 32768.0));
            }
        }
        self.len = n;
    }

    /// Ensures room for `n` more samples of the buffer's kind without moving the content, so
    /// that a batch of known size is allocated (and page-faulted, and page-locked) once rather
    /// than through a series of doublings.
    pub fn reserve(&mut self, n: usize) {
        let size = self.kind.size();
        let need = self
            .len
            .checked_add(n)
            .and_then(|t| t.checked_mul(size))
            .expect("sample buffer size overflows usize");
        self.reserve_bytes(need, self.len * size);
    }

    /// Ensures room for `n` more samples; returns the index of the first.
    fn grow(&mut self, n: usize) -> usize {
        let at = self.len;
        self.reserve(n);
        self.len = at + n;
        at
    }

    /// Ensures `need` bytes of capacity, keeping the first `keep` bytes.
    fn reserve_bytes(&mut self, need: usize, keep: usize) {
        if need <= self.cap {
            return;
        }
        let new_cap = need
            .max(self.cap.saturating_mul(2))
            .next_multiple_of(PAGE)
            .max(PAGE);
        let layout = Layout::from_size_align(new_cap, PAGE).expect("sample buffer layout");
        // SAFETY: layout has a non-zero size.
        let p = unsafe { alloc::alloc(layout) };
        let Some(p) = NonNull::new(p) else {
            alloc::handle_alloc_error(layout)
        };
        if keep > 0 {
            // SAFETY: both allocations hold at least `keep` bytes and do not overlap.
            unsafe { std::ptr::copy_nonoverlapping(self.ptr.as_ptr(), p.as_ptr(), keep) };
        }
        // The pin covers the old memory: release it before that memory is freed.
        self.pin = None;
        self.free();
        self.ptr = p;
        self.cap = new_cap;
    }

    fn free(&mut self) {
        if self.cap > 0 {
            // SAFETY: ptr was allocated with this layout by reserve_bytes.
            unsafe {
                alloc::dealloc(
                    self.ptr.as_ptr(),
                    Layout::from_size_align_unchecked(self.cap, PAGE),
                )
            };
            self.cap = 0;
            self.ptr = NonNull::<f32>::dangling().cast();
        }
    }

    /// The whole allocation (start, bytes): what a pin must cover. `None` before any sample.
    pub fn region(&self) -> Option<(*mut u8, usize)> {
        (self.cap > 0).then_some((self.ptr.as_ptr(), self.cap))
    }

    /// Whether the memory is page-locked by a pin.
    pub fn is_pinned(&self) -> bool {
        self.pin.is_some()
    }

    /// Keeps `pin` (which locks [`Self::region`]) until the memory moves or is freed.
    pub fn set_pin(&mut self, pin: Pin) {
        self.pin = Some(pin);
    }

    /// Drops the pin now, keeping the memory (freed when the buffer is).
    pub fn unpin(&mut self) {
        self.pin = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn extend_by_appends_what_fill_wrote_or_nothing() {
        let mut b = SampleBuf::new();
        b.extend_from_slice(&[1.0, 2.0]);
        // SAFETY: the closure writes all of the 3 × 4 bytes it gets.
        unsafe {
            b.extend_by::<()>(3, |p, bytes| {
                assert_eq!(bytes, 12);
                for i in 0..3 {
                    p.cast::<f32>().add(i).write(10.0 + i as f32);
                }
                Ok(())
            })
        }
        .unwrap();
        assert_eq!(b.f32s(), Some(&[1.0, 2.0, 10.0, 11.0, 12.0][..]));
        // SAFETY: the closure writes nothing and fails.
        let failed = unsafe { b.extend_by(1000, |_, _| Err("no")) };
        assert_eq!(failed, Err("no"));
        assert_eq!(b.len(), 5);
        b.clear(SampleKind::I16);
        // SAFETY: the closure writes all of the 2 × 2 bytes it gets.
        unsafe {
            b.extend_by::<()>(2, |p, _| {
                p.cast::<i16>().write(-3);
                p.cast::<i16>().add(1).write(7);
                Ok(())
            })
        }
        .unwrap();
        assert_eq!(b.i16s(), Some(&[-3, 7][..]));
    }

    #[test]
    fn grows_keeps_content_and_is_page_aligned() {
        let mut b = SampleBuf::new();
        assert_eq!(b.f32s(), Some(&[][..]));
        assert!(b.region().is_none());
        for i in 0..5000 {
            b.extend_f32(1)[0] = i as f32;
        }
        let s = b.f32s().unwrap();
        assert!(s.iter().enumerate().all(|(i, &v)| v == i as f32));
        let (p, cap) = b.region().unwrap();
        assert_eq!(p as usize % PAGE, 0);
        assert_eq!(cap % PAGE, 0);
        assert!(cap >= 5000 * 4);
        assert_eq!(b.as_bytes().len(), 5000 * 4);
        b.truncate(10);
        assert_eq!(b.len(), 10);
        b.clear(SampleKind::I16);
        assert!(b.is_empty() && b.f32s().is_none());
        assert_eq!(b.i16s(), Some(&[][..]));
    }

    #[test]
    fn reserve_allocates_once_for_what_follows_and_keeps_content() {
        let mut b = SampleBuf::new();
        b.clear(SampleKind::I16);
        b.extend_i16(2).copy_from_slice(&[7, -7]);
        b.reserve(128 * 40_960);
        let (ptr, cap) = b.region().unwrap();
        assert!(cap >= (2 + 128 * 40_960) * 2);
        for _ in 0..128 {
            b.extend_i16(40_960);
        }
        assert_eq!(
            b.region().unwrap().0,
            ptr,
            "the reserved allocation did not move"
        );
        assert_eq!(&b.i16s().unwrap()[..2], &[7, -7]);
        // Reserving less than is free changes nothing.
        b.clear(SampleKind::I16);
        b.reserve(10);
        assert_eq!(b.region(), Some((ptr, cap)));
    }

    #[test]
    fn filled_pcm16_room_keeps_what_was_written_and_zeroes_the_rest() {
        let mut b = SampleBuf::new();
        b.clear(SampleKind::I16);
        b.extend_i16(2).copy_from_slice(&[7, 8]);
        // Memory that held other values before: the unwritten room must come back zero.
        b.extend_i16(5000).fill(-1);
        b.truncate(2);
        // SAFETY: the closure writes 3 samples' bytes inside the room it gets.
        let wrote = unsafe {
            b.extend_i16_by(5000, |p, room| {
                assert_eq!(room, 10_000);
                std::ptr::copy_nonoverlapping([1u8, 0, 2, 0, 3, 0].as_ptr(), p, 6);
                Ok::<usize, ()>(6)
            })
        };
        assert_eq!(wrote, Ok(6));
        let v = b.i16s().unwrap();
        assert_eq!(v.len(), 5002);
        assert_eq!(&v[..5], &[7, 8, 1, 2, 3]);
        assert!(v[5..].iter().all(|&x| x == 0));
        // A failing fill appends nothing.
        // SAFETY: the closure writes nothing.
        let failed = unsafe { b.extend_i16_by(10, |_, _| Err::<usize, &str>("no")) };
        assert_eq!(failed, Err("no"));
        assert_eq!(b.len(), 5002);
    }

    #[test]
    fn pcm16_filled_into_f32_room_scales_like_the_decoder() {
        let raw: Vec<i16> = (0..70_000)
            .map(|i| (i * 7919 % 65536 - 32768) as i16)
            .collect();
        let bytes: Vec<u8> = raw.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut b = SampleBuf::new();
        b.extend_f32(3).copy_from_slice(&[0.5, 0.25, -1.0]);
        // An odd count: the last half-value is dropped.
        let k = 2 * 69_999 + 1;
        // SAFETY: the closure writes `k` bytes inside the room it gets.
        let wrote = unsafe {
            b.extend_f32_from_pcm16_by(70_001, |p, room| {
                assert_eq!(room, 140_002);
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, k);
                Ok::<usize, ()>(k)
            })
        };
        assert_eq!(wrote, Ok(k));
        let v = b.f32s().unwrap();
        assert_eq!(v.len(), 70_004);
        assert_eq!(&v[..3], &[0.5, 0.25, -1.0]);
        for (i, &x) in raw[..69_999].iter().enumerate() {
            let want = f32::from(x) / 32768.0;
            assert_eq!(v[3 + i].to_bits(), want.to_bits(), "value {i}");
        }
        assert!(v[3 + 69_999..].iter().all(|&x| x.to_bits() == 0));
        // SAFETY: the closure writes nothing.
        let failed = unsafe { b.extend_f32_from_pcm16_by(10, |_, _| Err::<usize, ()>(())) };
        assert_eq!(failed, Err(()));
        assert_eq!(b.len(), 70_004);
    }

    #[test]
    fn pcm16_converts_in_place_exactly_like_the_decoder() {
        let mut b = SampleBuf::new();
        b.clear(SampleKind::I16);
        let vals: Vec<i16> = (0..3000).map(|i| (i * 37 - 40000i32) as i16).collect();
        b.extend_i16(vals.len()).copy_from_slice(&vals);
        b.extend_i16(3); // zero padding
        b.convert_to_f32();
        let f = b.f32s().unwrap();
        assert_eq!(f.len(), 3003);
        for (i, &v) in vals.iter().enumerate() {
            assert_eq!(f[i], f32::from(v) / 32768.0);
        }
        assert_eq!(&f[3000..], &[0.0; 3]);
        // Still growable as f32.
        b.extend_from_slice(&[0.5]);
        assert_eq!(b.f32s().unwrap()[3003], 0.5);
    }

    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_pin_is_released_before_the_memory_moves_and_on_drop() {
        let dropped = Arc::new(AtomicUsize::new(0));
        let mut b = SampleBuf::new();
        b.extend_f32(100);
        b.set_pin(Box::new(Counted(dropped.clone())));
        assert!(b.is_pinned());
        b.clear(SampleKind::F32);
        b.extend_f32(100); // fits: the pin stays
        assert!(b.is_pinned());
        b.extend_f32(10_000); // regrows: the pin goes
        assert!(!b.is_pinned());
        assert_eq!(dropped.load(Ordering::SeqCst), 1);
        b.set_pin(Box::new(Counted(dropped.clone())));
        drop(b);
        assert_eq!(dropped.load(Ordering::SeqCst), 2);
    }
}
