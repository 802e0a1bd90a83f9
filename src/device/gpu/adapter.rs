//! Finding and choosing a wgpu adapter.
//!
//! Selection honours, in order: `WGTRAIN_ADAPTER` (a case-insensitive
//! substring of the adapter name; wgpu's own `WGPU_ADAPTER_NAME` works too)
//! and `WGTRAIN_BACKENDS` (comma-separated: vulkan, metal, dx12, gl; wgpu's
//! `WGPU_BACKEND` works too). Without them the most capable adapter wins:
//! discrete before integrated before virtual before software; GL is only
//! considered when no native API (Vulkan, Metal, DX12) offers an adapter.

use crate::error::{Error, Result};

/// What `wgtrain devices` prints about one adapter.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AdapterSummary {
    /// The adapter's name as the driver reports it.
    pub name: String,
    /// The graphics API in lower case, e.g. `vulkan`, `metal`, `dx12`, `gl`.
    pub backend: String,
    /// wgpu's device type: `DiscreteGpu`, `IntegratedGpu`, `VirtualGpu`, `Cpu` or `Other`.
    pub device_type: String,
    /// `driver (driver_info)`, or whichever of the two the driver reports.
    pub driver: String,
}

impl From<&wgpu::AdapterInfo> for AdapterSummary {
    fn from(info: &wgpu::AdapterInfo) -> Self {
        let driver = match (info.driver.is_empty(), info.driver_info.is_empty()) {
            (false, false) => format!("{} ({})", info.driver, info.driver_info),
            (false, true) => info.driver.clone(),
            _ => info.driver_info.clone(),
        };
        AdapterSummary {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend).to_lowercase(),
            device_type: format!("{:?}", info.device_type),
            driver,
        }
    }
}

fn backends_from_env() -> Result<Option<wgpu::Backends>> {
    let Ok(spec) = std::env::var("WGTRAIN_BACKENDS") else {
        return Ok(None);
    };
    let mut backends = wgpu::Backends::empty();
    for part in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        backends |= match part.to_lowercase().as_str() {
            "vulkan" | "vk" => wgpu::Backends::VULKAN,
            "metal" | "mtl" => wgpu::Backends::METAL,
            "dx12" | "d3d12" => wgpu::Backends::DX12,
            "gl" | "gles" | "opengl" => wgpu::Backends::GL,
            other => {
                return Err(Error::Config(format!(
                "WGTRAIN_BACKENDS: unknown backend '{other}' (expected vulkan, metal, dx12 or gl)"
            )))
            }
        };
    }
    Ok(Some(backends))
}

/// A wgpu instance configured from the environment, limited to `backends`.
fn instance(backends: wgpu::Backends) -> Result<wgpu::Instance> {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends &= backends;
    if let Some(b) = backends_from_env()? {
        desc.backends = b & backends;
    }
    Ok(wgpu::Instance::new(desc))
}

fn enumerate(backends: wgpu::Backends) -> Result<Vec<wgpu::Adapter>> {
    let inst = instance(backends)?;
    Ok(pollster::block_on(inst.enumerate_adapters(backends)))
}

/// Adapters for selection: the native APIs first, GL only if they offer none.
/// (Merely creating a GL instance makes Mesa's EGL print warnings on headless
/// machines, so it is not created unless needed.)
fn candidates() -> Result<Vec<wgpu::Adapter>> {
    let native = enumerate(wgpu::Backends::PRIMARY)?;
    if native.is_empty() {
        enumerate(wgpu::Backends::SECONDARY)
    } else {
        Ok(native)
    }
}

/// Larger is better.
fn preference(info: &wgpu::AdapterInfo) -> u8 {
    match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 4,
        wgpu::DeviceType::IntegratedGpu => 3,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 1,
        wgpu::DeviceType::Other => 0,
    }
}

fn name_filter() -> Option<String> {
    std::env::var("WGTRAIN_ADAPTER")
        .or_else(|_| std::env::var("WGPU_ADAPTER_NAME"))
        .ok()
        .filter(|s| !s.is_empty())
}

/// The index of the preferred adapter among `infos` (first one on ties).
fn choose(infos: &[wgpu::AdapterInfo], filter: Option<&str>) -> Option<usize> {
    let filter = filter.map(str::to_lowercase);
    infos
        .iter()
        .enumerate()
        .filter(|(_, i)| match &filter {
            Some(f) => i.name.to_lowercase().contains(f),
            None => true,
        })
        .max_by_key(|(idx, i)| (preference(i), std::cmp::Reverse(*idx)))
        .map(|(idx, _)| idx)
}

/// The CPU cores a software adapter runs workgroups on: llvmpipe's
/// `LP_NUM_THREADS` where set, else the cores this process may use
/// (llvmpipe's default). Read once (every tuned matmul asks).
pub fn software_cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| {
        std::env::var("LP_NUM_THREADS")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    })
}

/// Every adapter wgpu sees on every backend, and the index of the one
/// `select_adapter` picks.
pub fn list_adapters() -> Result<(Vec<AdapterSummary>, Option<usize>)> {
    let all: Vec<wgpu::AdapterInfo> = enumerate(wgpu::Backends::all())?
        .iter()
        .map(|a| a.get_info())
        .collect();
    let candidates: Vec<wgpu::AdapterInfo> = candidates()?.iter().map(|a| a.get_info()).collect();
    let chosen = choose(&candidates, name_filter().as_deref()).and_then(|c| {
        let c = &candidates[c];
        all.iter()
            .position(|i| i.name == c.name && i.backend == c.backend && i.device == c.device)
    });
    Ok((all.iter().map(AdapterSummary::from).collect(), chosen))
}

/// The adapter wgtrain would use, per the rules in the module docs.
pub(crate) fn select_adapter() -> Result<wgpu::Adapter> {
    let mut adapters = candidates()?;
    let infos: Vec<wgpu::AdapterInfo> = adapters.iter().map(|a| a.get_info()).collect();
    let filter = name_filter();
    match choose(&infos, filter.as_deref()) {
        Some(i) => Ok(adapters.swap_remove(i)),
        None => Err(Error::NoAdapter(match filter {
            Some(f) if !infos.is_empty() => format!(
                " matching '{f}' (available: {})",
                infos
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => String::new(),
        })),
    }
}
