//! `lupa-bench smart`: the Smart-mode classifier's confusion table on labelled folders, and
//! `lupa-bench fetch-held-out`: the held-out images it is also checked on.
//!
//! The thresholds in `lupa_core::smart` are fixed constants chosen on the images of
//! `../shared/eval`, so the table on those measures the fit, not how well the rules generalise.
//! The held-out set is images that were not used when choosing them: other files of three of the
//! Debian packages the evaluation set drew from (GIMP's manual and two Ren'Py games), listed below
//! with their sha256 and labelled by what they show; the thresholds were not re-tuned on them.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use lupa_core::smart::{Content, classify, features};

use crate::quality::image_files;

/// A labelled folder's content, from its name: the layout of ../shared/eval (`anime` is an
/// illustration, `text_ui` text, anything else a photo), or a content name (`photo`,
/// `illustration`, `text`) as in the held-out folder.
fn label(folder: &str) -> Content {
    match folder {
        "anime" | "illustration" => Content::Illustration,
        "text_ui" | "text" => Content::Text,
        _ => Content::Photo,
    }
}

/// The confusion table of one labelled root, printed under `title`.
fn table(title: &str, root: &Path) -> Result<(u32, u32)> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .with_context(|| format!("reading {}", root.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let index = |c: Content| Content::ALL.iter().position(|&k| k == c).expect("listed");
    let mut table = [[0u32; 3]; 3];
    let (mut wrong, mut per_folder) = (Vec::new(), Vec::new());
    for dir in dirs {
        let folder = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        let label = label(&folder);
        let (mut right, mut all) = (0, 0);
        for file in image_files(&dir)? {
            // By content, not extension: one of GIMP's ".jpg" files is a PNG.
            let image = image::ImageReader::open(&file)
                .and_then(|r| r.with_guessed_format())
                .map_err(anyhow::Error::from)
                .and_then(|r| Ok(r.decode()?))
                .with_context(|| format!("reading {}", file.display()))?;
            let f = features(&image);
            let (got, why) = classify(&f);
            table[index(label)][index(got)] += 1;
            all += 1;
            if got == label {
                right += 1;
            } else {
                wrong.push(format!(
                    "- `{}`: {} taken for {} ({why}; flat {:.3}, top8 {:.3}, strong edges {:.3}, saturation {:.3})",
                    file.display(),
                    label.name(),
                    got.name(),
                    f.flat,
                    f.top8,
                    f.strong_edges,
                    f.saturation
                ));
            }
        }
        per_folder.push(format!("{folder} ({}) {right}/{all}", label.name()));
    }
    let correct: u32 = (0..3).map(|i| table[i][i]).sum();
    let total: u32 = table.iter().flatten().sum();
    println!("{title}\n");
    println!("| label \\ predicted | {} |", Content::ALL.map(Content::name).join(" | "));
    println!("|---|---:|---:|---:|");
    for (label, row) in Content::ALL.iter().zip(table) {
        println!("| {} | {} |", label.name(), row.map(|n| n.to_string()).join(" | "));
    }
    println!(
        "\n{correct} of {total} correct ({:.0} %). Per folder: {}.",
        f64::from(correct) * 100.0 / f64::from(total.max(1)),
        per_folder.join(", ")
    );
    for line in wrong {
        println!("{line}");
    }
    Ok((correct, total))
}

/// The table on `root` (the images the thresholds were chosen on), then on each held-out root.
pub fn run(root: &Path, held_out: &[PathBuf]) -> Result<()> {
    table(
        &format!(
            "## {}: the images the thresholds in lupa_core::smart were chosen on (in-sample)",
            root.display()
        ),
        root,
    )?;
    for dir in held_out {
        println!();
        table(
            &format!(
                "## {}: held out (not used to choose the thresholds; labelled by content, thresholds not re-tuned)",
                dir.display()
            ),
            dir,
        )?;
    }
    Ok(())
}

/// A held-out image: its label, the Debian package (bookworm) holding it, its path in the
/// package, and its sha256.
type HeldOut = (&'static str, &'static str, &'static str, &'static str);

/// The Debian packages of the held-out images, at the versions the evaluation set used.
const PACKAGES: [(&str, &str); 3] =
    [("gimp-help-en", "2.10.34-2"), ("renpy-demo", "8.0.3+dfsg-1"), ("renpy-thequestion", "8.0.3+dfsg-1")];

/// Chosen by rule, not by result: photos are the GIMP manual's example and tutorial photographs
/// (originals, at least 200 px a side) and the Ren'Py demo's two photo backgrounds; illustrations
/// every character sprite, drawn background and CG of the two games not in ../shared/eval; text
/// every screenshot directly in the manual's `images/dialogs/` of at least 300×200 px that is not an
/// example canvas (`-exN`, `example`).
#[rustfmt::skip]
const HELD_OUT: &[HeldOut] = &[
    ("photo", "gimp-help-en", "usr/share/gimp/2.0/help/en/images/filters/examples/taj_orig.jpg", "4c25d1a1b80c7e17b9432e8cc4ec3ea315d7a105aee695041334444160c32a5a"),
    ("photo", "gimp-help-en", "usr/share/gimp/2.0/help/en/images/filters/examples/kvitveis-orig.png", "812650079cc14c0007d4fe084414c0b410b83bde3a7bdeb773607246e22c8016"),
    ("photo", "gimp-help-en", "usr/share/gimp/2.0/help/en/images/using/duck_orig.png", "9798960307a539b5fb72074408971baaba6f5de3427f54266c539bd266ab9c56"),
    ("photo", "gimp-help-en", "usr/share/gimp/2.0/help/en/images/tutorials/quickie-jpeg-example.jpg", "27464fb93aeb0ed19c0e0dc42b7a41b25d12943fb5b14bd089015f9da4efc274"),
    ("photo", "gimp-help-en", "usr/share/gimp/2.0/help/en/images/tutorials/quickie-crop-example-source.jpg", "b418e6e4dee0c89a6619eb99af36dcac7d812cb98cf6a6c6b4dc6df443ce35ef"),
    ("photo", "gimp-help-en", "usr/share/gimp/2.0/help/en/images/tutorials/quickie-remove-background-source.jpg", "dbaa961917ff777f65c4788d7a2f6dc146c4975a3cd7e19b032aa34d599d2c7c"),
    ("photo", "gimp-help-en", "usr/share/gimp/2.0/help/en/images/tutorials/tone-mapping/apple-orchard-truck-from-camera.jpg", "4d456ec2069d1ef543489e0f503d2eaa6bb0b17654e2029928a0d8ffdb4341b3"),
    ("photo", "gimp-help-en", "usr/share/gimp/2.0/help/en/images/tutorials/tone-mapping/tree-exposed-for-sky-ground-is-dark.jpg", "a6e04d178232d4e8207c33d613e67d928e7f82ab8f246da8882c44617669f33c"),
    ("photo", "gimp-help-en", "usr/share/gimp/2.0/help/en/images/filters/examples/distort/spherize-ex-orig.jpg", "5ac3267885c0f975452837da5d8e109409d99e8ea8de4db1f649c51fad927760"),
    ("photo", "gimp-help-en", "usr/share/gimp/2.0/help/en/images/filters/examples/map/little_planet-origin.jpg", "466ad3c33b0c56b082d1b929dd58d50f5dd0fdd4c333f8b88165313890b7b3f6"),
    ("photo", "gimp-help-en", "usr/share/gimp/2.0/help/en/images/filters/examples/map/pan-project-origin.jpg", "83d852f3d8ae5052b2e5eddb5900edb5fd6ca68138314a1e26f2a613ee955f85"),
    ("photo", "gimp-help-en", "usr/share/gimp/2.0/help/en/images/filters/examples/light-and-shadow/vignette-ex-orig.jpg", "073150759e45859f35002c0ae86527c23da67f97b01ca4c6dc26716294e9411a"),
    ("photo", "renpy-demo", "usr/share/games/renpy/demo/game/images/bg washington.jpg", "f353b70d19d2e35439e87a01f253aa99cc10d1dc11922b9856ae3044fc16e920"),
    ("photo", "renpy-demo", "usr/share/games/renpy/demo/game/images/bg whitehouse.jpg", "07315eca63e89dda61913a11a7f92a146a3889d3e20f5409f9ccaf7a13a121c7"),
    ("illustration", "renpy-demo", "usr/share/games/renpy/demo/game/images/eileen concerned.png", "48d6f42c490887077f18d03138ec41696f73ecbb8c40068c027f74e5c6525fb4"),
    ("illustration", "renpy-demo", "usr/share/games/renpy/demo/game/images/eileen vhappy.png", "7abdf5e1f46f0d2eb882b1612673058e7c818aa553c139be41bbe43f3e1424ab"),
    ("illustration", "renpy-demo", "usr/share/games/renpy/demo/game/images/lucy mad.png", "6362abbedd4db0fc2c7b5a046952c50a8051238cdd969300c2f3e10d95d20f64"),
    ("illustration", "renpy-demo", "usr/share/games/renpy/demo/game/images/concert1.png", "e0216c8fabbfcc083328eb77f5b4dfac29f86ad7a10107513675c8202a7fe513"),
    ("illustration", "renpy-demo", "usr/share/games/renpy/demo/game/images/concert2.png", "e143f0ddef3fdbdcf9de571712223b08c3bb405bc0173a5b35c2f14d8292edf3"),
    ("illustration", "renpy-demo", "usr/share/games/renpy/demo/game/images/concert3.png", "e32419aab2450dccbbece6456ff4570db1b6633c4738e2b2f55fe744dfcb2ed1"),
    ("illustration", "renpy-thequestion", "usr/share/games/renpy/the_question/game/images/sylvie blue giggle.png", "1a21c22446daeabb246bc34c9fc7f87e21cff526bbdc9935fc6e7ba1a56ee056"),
    ("illustration", "renpy-thequestion", "usr/share/games/renpy/the_question/game/images/sylvie blue normal.png", "0e63c188ebe165fa1e415fc14b2ffcec6c5bb52bcf2d18e2388d0487b78f36d3"),
    ("illustration", "renpy-thequestion", "usr/share/games/renpy/the_question/game/images/sylvie blue smile.png", "d681a7b76b7efa56983482776810f4d2856411cdcb45f4d42322829ac56f5e64"),
    ("illustration", "renpy-thequestion", "usr/share/games/renpy/the_question/game/images/sylvie blue surprised.png", "b8a6e923df0f081ef40cd997213e8f0fc5e0e71c284edbbc28cf26ec33b64c6d"),
    ("illustration", "renpy-thequestion", "usr/share/games/renpy/the_question/game/images/sylvie green giggle.png", "75841d17e3a3c6002cd82f5e67a1316ebcf41b2bfce4c1a758226fc31984c4bc"),
    ("illustration", "renpy-thequestion", "usr/share/games/renpy/the_question/game/images/sylvie green normal.png", "11ede0da6903e143ba738383ca566d9d8564460cbe1246c1bd72f29b31acba43"),
    ("illustration", "renpy-thequestion", "usr/share/games/renpy/the_question/game/images/sylvie green surprised.png", "6d4c735652acaf30d2ff04fb4675659aca5051a9de2c761c6b186605c72a7f5a"),
    ("illustration", "renpy-thequestion", "usr/share/games/renpy/the_question/game/images/bg lecturehall.jpg", "d8f477d6022ec8d409985e6d6c4a9dfc03f8671b98caaa587c134ba3f24fb915"),
    ("illustration", "renpy-thequestion", "usr/share/games/renpy/the_question/game/images/bg meadow.jpg", "c6d77eb070edb21658d66d5db5bc1578a535437ff9f9cbb34baf4d2ce46cb2a6"),
    ("text", "gimp-help-en", "usr/share/gimp/2.0/help/en/images/dialogs/brushes-dialog.png", "769b5fb8d3f0612fd1b71451671a45f7487660a53ecc0e2ad827792a5feb482d"),
    ("text", "gimp-help-en", "usr/share/gimp/2.0/help/en/images/dialogs/buffers-dialog-grid.png", "2aa9b226b81717d6cd4dc633688a1188bbdefaa4b2a6fe096cad81799ebc0bf0"),
    ("text", "gimp-help-en", "usr/share/gimp/2.0/help/en/images/dialogs/buffers-dialog.png", "bdf5b0201605b90bf0180112b0a68029a6dd4b16c3d260040f72d47674ea021c"),
    ("text", "gimp-help-en", "usr/share/gimp/2.0/help/en/images/dialogs/channels-dialog.png", "bdff19d56385f6d3d486fae560931ed1598dfa21f310eccbe4afe5cb09ee3308"),
    ("text", "gimp-help-en", "usr/share/gimp/2.0/help/en/images/dialogs/dashboard-context-menu.png", "838789bc12be5fdf4c5c166a58730c932bf8ee00b5545594d2f7796624b4df98"),
    ("text", "gimp-help-en", "usr/share/gimp/2.0/help/en/images/dialogs/dialogs-templates-edit-advanced.png", "5d221bb0e6179ea83f2c9897cd664f9dfe10e4afc8af7b4bc36fb6687fb88183"),
    ("text", "gimp-help-en", "usr/share/gimp/2.0/help/en/images/dialogs/error-console-context-menu.png", "4e8950142e5965aeeeaf83f39ee399586aa7d9908f7a20a1d1e767fbe8e0a9cd"),
    ("text", "gimp-help-en", "usr/share/gimp/2.0/help/en/images/dialogs/error-console-record.png", "4ba8a3ed5bebc7b6e1ef50f9788db561a4959566908b988e057c7662d0f5a18e"),
    ("text", "gimp-help-en", "usr/share/gimp/2.0/help/en/images/dialogs/image-mode-indexed.png", "0281f0155a38151f3608af09c30d5d2b5d01ad46eab61fce7fec56a7a4abf007"),
    ("text", "gimp-help-en", "usr/share/gimp/2.0/help/en/images/dialogs/keyboard-shortcuts-dialog.png", "fccdf9cdf4d9fa4fdebd44bb56b6e43ef5a168ba777e8df19e5ecd10518de3d0"),
    ("text", "gimp-help-en", "usr/share/gimp/2.0/help/en/images/dialogs/layer-dialog.png", "0ee8304437b8d157a8dd1c40684afb061af7202086d0cdf32d033c4a2547c085"),
    ("text", "gimp-help-en", "usr/share/gimp/2.0/help/en/images/dialogs/layer-group-mask.png", "42a082a4373beb37fe03c22932fd3c4936c76ad1ba46216fe3eff9392b22d82b"),
    ("text", "gimp-help-en", "usr/share/gimp/2.0/help/en/images/dialogs/layer-group-merge-in.png", "f86990750c61fd57e53d620c9c1f81cbb38b53a904e4ca5f7320891e6448c6c4"),
    ("text", "gimp-help-en", "usr/share/gimp/2.0/help/en/images/dialogs/layer-group-merge-out.png", "fb49f336e19b417c1d1ece661976b3fab9a81dc4ede7b1c029b944af4cb6fb10"),
    ("text", "gimp-help-en", "usr/share/gimp/2.0/help/en/images/dialogs/mypaint-brushes-dialog-simple.png", "6ad95436677d37a767d92c6fc54470d65472f55b8561b3a9aaeef5dc3e2cab52"),
    ("text", "gimp-help-en", "usr/share/gimp/2.0/help/en/images/dialogs/mypaint-brushes-dialog.png", "2077a76b2d0b0ccddc61826394a3e048f3c4587452951d24261c8c77f3b9e560"),
    ("text", "gimp-help-en", "usr/share/gimp/2.0/help/en/images/dialogs/palette-import-dialog.png", "6032fa5541994b3fec5d7e7ef6eeb8bc2eb9be54f6eae269d146736ca1adb8a9"),
    ("text", "gimp-help-en", "usr/share/gimp/2.0/help/en/images/dialogs/palettes-sort.png", "6b7c33b0c0b20ed101f339130966d807c80742c9350e37778ce23677bb41d592"),
    ("text", "gimp-help-en", "usr/share/gimp/2.0/help/en/images/dialogs/symmetry-mirror.png", "8070a2091993d5f50bf8ccee77530dd7ff05ac1a6da5be105aaedafe6b3b9cc8"),
    ("text", "gimp-help-en", "usr/share/gimp/2.0/help/en/images/dialogs/symmetry-tiling.png", "aeb372b7c01b694907d1aa2478b8c19ee25f3539ffdc5996463a2a9ae0c32440"),
];

/// Downloads the packages of [`HELD_OUT`] with `apt-get download` into `cache` (once), unpacks
/// them, checks every listed file's sha256, refuses any that `manifest` (../shared/eval's) lists,
/// and copies them to `out/{photo,illustration,text}/`.
pub fn fetch(out: &Path, cache: &Path, manifest: &Path) -> Result<()> {
    let manifest = std::fs::read_to_string(manifest)
        .with_context(|| format!("reading {} (the evaluation set's sources)", manifest.display()))?;
    std::fs::create_dir_all(cache)?;
    for (package, version) in PACKAGES {
        let unpacked = cache.join(format!("{package}_{version}"));
        if unpacked.is_dir() {
            continue;
        }
        let deb = cache.join(format!("{package}_{}_all.deb", version.replace(':', "%3a")));
        if !deb.is_file() {
            let status = Command::new("apt-get")
                .args(["download", &format!("{package}={version}")])
                .current_dir(cache)
                .status()
                .context("running apt-get")?;
            ensure!(status.success() && deb.is_file(), "apt-get download {package}={version} failed");
        }
        let partial = cache.join(format!("{package}_{version}.partial"));
        let status =
            Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&partial).status().context("dpkg-deb")?;
        ensure!(status.success(), "unpacking {} failed", deb.display());
        std::fs::rename(&partial, &unpacked)?;
    }
    for &(label, package, path, sha256) in HELD_OUT {
        if manifest.lines().any(|l| l.contains(path)) {
            bail!("{path} of {package} is in the evaluation set: it cannot be held out");
        }
        let version = PACKAGES.iter().find(|(p, _)| *p == package).context("listed package")?.1;
        let source = cache.join(format!("{package}_{version}")).join(path);
        let bytes = std::fs::read(&source).with_context(|| format!("reading {}", source.display()))?;
        let actual = lupa_core::sha256_hex(&bytes);
        ensure!(actual == sha256, "{} has sha256 {actual}, pinned {sha256}", source.display());
        let name = Path::new(path).file_name().context("file name")?.to_string_lossy().replace(' ', "_");
        let dir = out.join(label);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("{package}__{name}")), bytes)?;
    }
    println!("{} held-out images in {}", HELD_OUT.len(), out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_out_images_are_labelled_and_distinct() {
        for (label, package, path, sha256) in HELD_OUT {
            assert!(["photo", "illustration", "text"].contains(label), "{path}: label {label}");
            assert!(PACKAGES.iter().any(|(p, _)| p == package), "{path}: package {package}");
            assert_eq!(sha256.len(), 64);
        }
        let mut names: Vec<&str> = HELD_OUT.iter().map(|h| h.2).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), HELD_OUT.len(), "a held-out file is listed twice");
    }

    #[test]
    fn folder_names_are_labels() {
        assert_eq!(label("anime"), Content::Illustration);
        assert_eq!(label("illustration"), Content::Illustration);
        assert_eq!(label("text_ui"), Content::Text);
        assert_eq!(label("text"), Content::Text);
        assert_eq!(label("skimage_photo"), Content::Photo);
    }
}
