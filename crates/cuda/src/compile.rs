//! NVRTC compilation of the kernel source for one device: machine code (cubin) for the device's
//! own architecture when NVRTC knows it, else PTX of the newest architecture NVRTC knows, which
//! the driver compiles at load time.

use crate::error::GpuUnavailable;
use crate::probe::nvrtc_version;
use cudarc::nvrtc::{result, sys, Ptx};
use std::ffi::CString;

/// Options beyond the architecture. No `--use_fast_math`: its approximate log10 and divisions
/// are not needed for speed (the job is bound by transfers) and would eat into the 0.05 dB
/// accuracy budget. `--fmad=true` is NVRTC's default and kept explicit.
const OPTIONS: &[&str] = &["--std=c++17", "--fmad=true"];

/// What NVRTC produced.
pub(crate) struct Compiled {
    /// The image to load.
    pub image: Ptx,
    /// The `--gpu-architecture` value used.
    pub arch: String,
}

/// The architectures this NVRTC can compile for (e.g. 75, 80, 90, ...).
fn supported_archs() -> Result<Vec<i32>, GpuUnavailable> {
    let err = |e: result::NvrtcError| GpuUnavailable::Driver {
        op: "listing NVRTC's architectures",
        msg: e.to_string(),
    };
    let mut n = 0i32;
    // SAFETY: writes one int; NVRTC is loaded (checked by nvrtc_version before).
    unsafe { sys::nvrtcGetNumSupportedArchs(&mut n) }
        .result()
        .map_err(err)?;
    let mut archs = vec![0i32; n.max(0) as usize];
    // SAFETY: the buffer holds the number of ints NVRTC just reported.
    unsafe { sys::nvrtcGetSupportedArchs(archs.as_mut_ptr()) }
        .result()
        .map_err(err)?;
    Ok(archs)
}

/// The `--gpu-architecture` option for a device of compute capability `cc`, and whether it
/// yields machine code (true) or PTX for the driver to compile.
pub(crate) fn choose_arch(supported: &[i32], cc: (u32, u32)) -> Option<(String, bool)> {
    let dev = (cc.0 * 10 + cc.1) as i32;
    let best = supported.iter().copied().filter(|&a| a <= dev).max()?;
    Some(if best == dev {
        (format!("sm_{dev}"), true)
    } else {
        (format!("compute_{best}"), false)
    })
}

/// Compiles `src` for a device of compute capability `cc`.
pub(crate) fn compile(src: &str, cc: (u32, u32)) -> Result<Compiled, GpuUnavailable> {
    nvrtc_version()?;
    let archs = supported_archs()?;
    let (arch, cubin) = choose_arch(&archs, cc).ok_or_else(|| {
        GpuUnavailable::Unsupported(format!(
            "NVRTC supports architectures {archs:?}, none at or below the device's sm_{}{}",
            cc.0, cc.1
        ))
    })?;
    let c_src = CString::new(src).map_err(|e| GpuUnavailable::Compile(e.to_string()))?;
    let name = c"logmel.cu";
    let prog = result::create_program(&c_src, Some(name))
        .map_err(|e| GpuUnavailable::Compile(e.to_string()))?;
    let mut opts: Vec<String> = OPTIONS.iter().map(|s| s.to_string()).collect();
    opts.push(format!("--gpu-architecture={arch}"));
    // SAFETY: `prog` was created above and is destroyed once, at the end of this function;
    // c_src and name outlive it.
    let out = unsafe { build(prog, &opts, cubin) };
    // SAFETY: as above; nothing uses `prog` after this.
    let _ = unsafe { result::destroy_program(prog) };
    let image = out?;
    Ok(Compiled { image, arch })
}

/// Compiles `prog` and extracts its image.
///
/// # Safety
/// `prog` must be a live NVRTC program.
unsafe fn build(
    prog: sys::nvrtcProgram,
    opts: &[String],
    cubin: bool,
) -> Result<Ptx, GpuUnavailable> {
    // SAFETY: `prog` is live (the caller's contract).
    if let Err(e) = unsafe { result::compile_program(prog, opts) } {
        // SAFETY: as above.
        let log = unsafe { result::get_program_log(prog) }
            .map(|l| {
                let bytes: Vec<u8> = l
                    .iter()
                    .take_while(|&&c| c != 0)
                    .map(|&c| c as u8)
                    .collect();
                String::from_utf8_lossy(&bytes).into_owned()
            })
            .unwrap_or_default();
        return Err(GpuUnavailable::Compile(format!(
            "{e} ({}):\n{log}",
            opts.join(" ")
        )));
    }
    let err = |e: result::NvrtcError| GpuUnavailable::Compile(e.to_string());
    if cubin {
        let mut size = 0usize;
        // SAFETY: `prog` is live and compiled; `size` is a valid place for the result.
        unsafe { sys::nvrtcGetCUBINSize(prog, &mut size) }
            .result()
            .map_err(err)?;
        let mut image = vec![0u8; size];
        // SAFETY: `image` holds the `size` bytes NVRTC said the image needs.
        unsafe { sys::nvrtcGetCUBIN(prog, image.as_mut_ptr().cast()) }
            .result()
            .map_err(err)?;
        Ok(Ptx::from_binary(image))
    } else {
        // SAFETY: `prog` is live and compiled.
        let ptx = unsafe { result::get_ptx(prog) }.map_err(err)?;
        let bytes: Vec<u8> = ptx
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        Ok(Ptx::from_src(String::from_utf8_lossy(&bytes).into_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{KernelPlan, Tables};
    use crate::probe::nvrtc_library_present;
    use melpipe_core::config::{Dtype, MelNorm, Params, Pool};

    #[test]
    fn arch_is_the_device_own_when_known_else_the_newest_below() {
        let known = [75, 80, 86, 89, 90, 100, 120];
        assert_eq!(choose_arch(&known, (9, 0)), Some(("sm_90".into(), true)));
        assert_eq!(
            choose_arch(&known, (8, 7)),
            Some(("compute_86".into(), false))
        );
        assert_eq!(
            choose_arch(&known, (13, 0)),
            Some(("compute_120".into(), false))
        );
        assert_eq!(choose_arch(&known, (7, 0)), None);
    }

    /// Compiles every kernel variant where libnvrtc is installed (it needs no GPU): catches
    /// source errors before a device is involved. Skipped elsewhere.
    #[test]
    fn every_variant_compiles_where_nvrtc_is_present() {
        if !nvrtc_library_present() {
            eprintln!("libnvrtc not found: kernel compilation not checked");
            return;
        }
        let variants = [
            Params::default(),
            Params {
                pool: Pool::None,
                top_db: Some(80.0),
                dtype: Dtype::F32,
                ..Params::default()
            },
            Params {
                n_fft: 256,
                win_length: 200,
                hop_length: 64,
                norm: MelNorm::Slaney,
                top_db: Some(40.0),
                ..Params::default()
            },
            Params {
                n_fft: 100,
                win_length: 100,
                pool: Pool::None,
                ..Params::default()
            },
        ];
        for cfg in variants {
            cfg.validate().unwrap();
            let plan = KernelPlan::new(&cfg, 227 * 1024).unwrap();
            let src = plan.source(&cfg, &Tables::new(&cfg));
            if let Err(e) = compile(&src, (9, 0)) {
                panic!("{:?} n_fft {}: {e}", plan.kind, cfg.n_fft);
            }
        }
    }
}
