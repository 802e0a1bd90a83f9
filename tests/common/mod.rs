//! Shared by the integration tests: the GPU device, or a skip that is only
//! allowed when no adapter exists and WGTRAIN_REQUIRE_GPU is unset.
#![allow(dead_code)]

use std::sync::OnceLock;

use wgtrain::{Error, GpuDevice};

/// Whether CI (or the user) demands that GPU tests really run.
pub fn gpu_required() -> bool {
    std::env::var("WGTRAIN_REQUIRE_GPU").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The GPU device shared by all tests of one test binary, or `None` when no
/// adapter exists and GPU tests may be skipped. Any other failure to open the
/// adapter, or a missing adapter under WGTRAIN_REQUIRE_GPU, fails the test.
pub fn gpu() -> Option<GpuDevice> {
    static DEVICE: OnceLock<Result<GpuDevice, String>> = OnceLock::new();
    let dev = DEVICE.get_or_init(|| match GpuDevice::new() {
        Ok(d) => Ok(d),
        Err(Error::NoAdapter(detail)) if !gpu_required() => Err(detail),
        Err(e) => panic!(
            "cannot open the GPU device (WGTRAIN_REQUIRE_GPU={}): {e}",
            gpu_required()
        ),
    });
    match dev {
        Ok(d) => Some(d.clone()),
        Err(detail) => {
            eprintln!("SKIPPED: no GPU adapter{detail} and WGTRAIN_REQUIRE_GPU is unset");
            None
        }
    }
}

/// A device of its own (not shared with other tests), for tests that count
/// allocations or submissions. Same skip rules as [`gpu`].
pub fn fresh_gpu() -> Option<GpuDevice> {
    gpu()?;
    Some(GpuDevice::new().expect("the adapter opened once already"))
}
