//! Backend choice for the CLI: every device decision of this crate lives here.
//!
//! Order for `auto`: a hardware wgpu adapter (Vulkan, Metal or DX12), else the `flex` CPU backend.
//! A software wgpu adapter (Mesa's lavapipe/llvmpipe) counts as no GPU for `auto`, because `flex`
//! is faster than an emulated GPU; `--backend wgpu` still uses it, which is how the wgpu path is
//! tested on machines without a GPU.

use anyhow::{Context, Result};
use clap::ValueEnum;
use lupa_core::burn::tensor::Device;
use lupa_core::burn::tensor::wgpu::WgpuSetup;
use lupa_core::burn::tensor::wgpu::wgpu::DeviceType;

/// What `--backend` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// A hardware GPU through wgpu if there is one, else the CPU.
    Auto,
    /// wgpu (Vulkan, Metal, DX12), software adapters included.
    Wgpu,
    /// The `flex` CPU backend.
    Cpu,
}

/// The device picked and a line saying why, for the user.
pub struct Chosen {
    pub device: Device,
    pub description: String,
    /// The device's largest buffer (smaller of max storage binding and max buffer size), on wgpu.
    pub max_buffer: Option<u64>,
}

/// The largest buffer the device Burn created allows, in bytes.
fn max_buffer(setup: &WgpuSetup) -> Option<u64> {
    Some(lupa_core::largest_buffer(&setup.device.limits()))
}

/// Creates the device for `choice`.
///
/// # Errors
/// When `wgpu` is asked for and no adapter can be created.
pub fn choose(choice: BackendChoice) -> Result<Chosen> {
    let cpu = || Chosen { device: Device::flex(), description: "CPU (flex)".into(), max_buffer: None };
    match choice {
        BackendChoice::Cpu => Ok(cpu()),
        BackendChoice::Wgpu => {
            let (device, setup) = Device::wgpu_options().init_with_setup().context(
                "no wgpu adapter could be created (install a Vulkan driver, e.g. mesa-vulkan-drivers)",
            )?;
            let info = setup.adapter.get_info();
            Ok(Chosen {
                description: format!("wgpu: {} ({:?}, {:?})", info.name, info.backend, info.device_type),
                max_buffer: max_buffer(&setup),
                device,
            })
        }
        BackendChoice::Auto => match Device::wgpu_options().init_with_setup() {
            Ok((device, setup)) => {
                let info = setup.adapter.get_info();
                if info.device_type == DeviceType::Cpu {
                    let mut chosen = cpu();
                    chosen.description += &format!(" — wgpu adapter `{}` is a software renderer", info.name);
                    Ok(chosen)
                } else {
                    Ok(Chosen {
                        description: format!("wgpu: {} ({:?})", info.name, info.backend),
                        max_buffer: max_buffer(&setup),
                        device,
                    })
                }
            }
            Err(e) => {
                let mut chosen = cpu();
                chosen.description += &format!(" — no wgpu adapter: {e}");
                Ok(chosen)
            }
        },
    }
}
