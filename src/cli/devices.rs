//! `wgtrain devices`: the adapters wgpu sees, and the one wgtrain would use.

use super::summary::DevicesSummary;
use clap::Args;
use wgtrain::device::gpu::list_adapters;
use wgtrain::device::CpuDevice;

#[derive(Args, Debug)]
pub struct DevicesArgs {
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: DevicesArgs) -> anyhow::Result<()> {
    let (adapters, chosen) = list_adapters()?;
    if args.json {
        crate::outln!(
            "{}",
            serde_json::to_string(&DevicesSummary {
                adapters: &adapters,
                chosen: chosen.map(|i| adapters[i].name.as_str()),
                cpu_instruction_set: CpuDevice::instruction_set(),
            })?
        )?;
        return Ok(());
    }
    let cpu = format!(
        "the CPU device's matrix products use {}",
        CpuDevice::instruction_set()
    );
    if adapters.is_empty() {
        crate::outln!("no GPU adapters found; wgtrain will train on the CPU")?;
        crate::outln!("{cpu}")?;
        crate::outln!("(on Linux without a GPU: apt-get install mesa-vulkan-drivers for the lavapipe software adapter)")?;
        return Ok(());
    }
    crate::outln!(
        "  {:<2} {:<40} {:<8} {:<14} driver",
        "#",
        "name",
        "backend",
        "type"
    )?;
    for (i, a) in adapters.iter().enumerate() {
        let mark = if Some(i) == chosen { "*" } else { " " };
        crate::outln!(
            "{mark} {:<2} {:<40} {:<8} {:<14} {}",
            i,
            a.name,
            a.backend,
            a.device_type,
            a.driver
        )?;
    }
    match chosen {
        Some(i) => crate::outln!("\n* = used by --device gpu/auto: {}", adapters[i].name),
        None => crate::outln!("\nno adapter matches WGTRAIN_ADAPTER; --device gpu would fail"),
    }?;
    crate::outln!("{cpu}")?;
    Ok(())
}
