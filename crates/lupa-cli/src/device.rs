//! Backend choice for the CLI: every device decision of this crate lives here.
//!
//! Order for `auto`: a hardware wgpu adapter (Vulkan, Metal or DX12), else the `flex` CPU backend.
//! A software wgpu adapter (Mesa's lavapipe/llvmpipe) counts as no GPU for `auto`, because `flex`
//! is faster than an emulated GPU; `--backend wgpu` still uses it, which is how the wgpu path is
//! tested on machines without a GPU.

use anyhow::{Context, Result};
use clap::ValueEnum;
use lupa_core::Precision;
use lupa_core::burn::tensor::Device;
use lupa_core::burn::tensor::wgpu::WgpuSetup;
use lupa_core::burn::tensor::wgpu::wgpu::{AdapterInfo, DeviceType};

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

/// What `--precision` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PrecisionChoice {
    /// f16 on a hardware GPU with shader-f16, else f32.
    Auto,
    F32,
    /// f16 on wgpu (an error where the device has no shader-f16).
    F16,
}

/// The device picked and a line saying why, for the user.
pub struct Chosen {
    pub device: Device,
    /// What the models compute in on `device` (f32 on the CPU).
    pub precision: Precision,
    pub description: String,
    /// The device's largest buffer (smaller of max storage binding and max buffer size), on wgpu.
    pub max_buffer: Option<u64>,
}

/// The largest buffer the device Burn created allows, in bytes.
fn max_buffer(setup: &WgpuSetup) -> Option<u64> {
    Some(lupa_core::largest_buffer(&setup.device.limits()))
}

/// The precision for `choice` on the wgpu `device` of adapter `info`.
fn precision(choice: PrecisionChoice, device: &Device, info: &AdapterInfo) -> Result<Precision> {
    match choice {
        PrecisionChoice::Auto => Ok(Precision::for_adapter(device, info)),
        PrecisionChoice::F32 => Ok(Precision::F32),
        PrecisionChoice::F16 if Precision::f16_supported(device) => Ok(Precision::F16),
        PrecisionChoice::F16 => {
            anyhow::bail!("--precision f16: the wgpu adapter `{}` has no shader-f16", info.name)
        }
    }
}

/// Creates the device for `choice`, computing in `precision` there.
///
/// # Errors
/// When `wgpu` is asked for and no adapter can be created, or f16 where the device lacks it.
pub fn choose(choice: BackendChoice, precision_choice: PrecisionChoice) -> Result<Chosen> {
    let chosen = choose_device(choice, precision_choice)?;
    if precision_choice == PrecisionChoice::F16 && chosen.precision != Precision::F16 {
        anyhow::bail!(
            "--precision f16 needs a wgpu device ({}; the CPU backend computes in f32)",
            chosen.description
        );
    }
    Ok(chosen)
}

fn choose_device(choice: BackendChoice, precision_choice: PrecisionChoice) -> Result<Chosen> {
    let cpu = || Chosen {
        device: Device::flex(),
        precision: Precision::F32,
        description: "CPU (flex)".into(),
        max_buffer: None,
    };
    match choice {
        BackendChoice::Cpu => Ok(cpu()),
        BackendChoice::Wgpu => {
            let (device, setup) = Device::wgpu_options().init_with_setup().context(
                "no wgpu adapter could be created (install a Vulkan driver, e.g. mesa-vulkan-drivers)",
            )?;
            let info = setup.adapter.get_info();
            let precision = precision(precision_choice, &device, &info)?;
            Ok(Chosen {
                description: format!(
                    "wgpu: {} ({:?}, {:?}), {}",
                    info.name,
                    info.backend,
                    info.device_type,
                    precision.name()
                ),
                max_buffer: max_buffer(&setup),
                precision,
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
                    let precision = precision(precision_choice, &device, &info)?;
                    Ok(Chosen {
                        description: format!(
                            "wgpu: {} ({:?}), {}",
                            info.name,
                            info.backend,
                            precision.name()
                        ),
                        max_buffer: max_buffer(&setup),
                        precision,
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
