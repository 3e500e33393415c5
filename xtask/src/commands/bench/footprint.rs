//! The footprint phase: each package profile, unpacked and compressed,
//! next to Debian's packages of the same arch and version.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use serde_json::{json, Value};

use super::debian::Debian;
use super::plan::Options;
use crate::engine::project::Project;
use crate::model::manifest::Loaded;

pub(super) fn footprint(project: &Project, loaded: &Loaded, o: &Options, debian: &Debian) -> Result<(Value, String)> {
    let mut ours = vec![];
    for (profile, p) in &loaded.manifest.package.profile {
        // An application-sized profile is measured with its sample application.
        let app = p.bench_app.as_ref().map(|f| crate::deploy::package::App { file: loaded.path.parent().unwrap_or(Path::new(".")).join(f), args: vec![] });
        let opts = crate::deploy::package::Options { profile: Some(profile.clone()), prefix: None, rootfs: None, force: false, app };
        ours.push(crate::deploy::package::package(project, loaded, &o.arch, &opts)?);
    }
    let mib = |b: u64| b as f64 / 1048576.0;
    let mut t = format!("\nfootprint ({}; MiB)\n  {:44} {:>9} {:>9} {:>9}\n", o.arch, "", "unpacked", ".tar.gz", ".tar.zst");
    for p in &ours {
        let size = |ext: &str| p.archives.iter().find(|(n, _)| n.ends_with(ext)).map_or(0, |a| a.1);
        writeln!(
            t,
            "  {:44} {:>9.1} {:>9.1} {:>9.1}",
            format!("crosspython {} profile", p.profile),
            mib(p.unpacked_bytes),
            mib(size(".tar.gz")),
            mib(size(".tar.zst"))
        )?;
    }
    // Like for like: what Debian's four packages hold is the interpreter,
    // the stdlib and its C modules; ours by component, per profile.
    let debian_unpacked: u64 = debian.packages.iter().map(|(_, u, _)| u).sum();
    // The same modules: stdlib modules Debian ships in other packages than
    // the four (ensurepip is python3.X-venv's) are left out of ours.
    let debian_stdlib = debian.root.join("usr/lib").join(&debian.python);
    let debian_has = |module: &str| module.ends_with(".zip") || debian_stdlib.join(module).is_dir() || debian_stdlib.join(format!("{module}.py")).is_file();
    for p in &ours {
        let part = |f: &dyn Fn(&str) -> bool| p.components.iter().filter(|(k, _)| f(k)).map(|(_, v)| *v).sum::<u64>();
        let python = part(&|k| k.starts_with("interpreter") || k.starts_with("stdlib"));
        let libs = part(&|k| k.starts_with("C library"));
        let toolchain = part(&|k| k.starts_with("toolchain"));
        let site = part(&|k| k.starts_with("site-packages"));
        writeln!(
            t,
            "  {:44} {:>9.1}   ({:.2} of Debian's four; C libraries {:.1}, toolchain /lib {:.1}, site-packages {:.1})",
            format!("  {}: interpreter + stdlib + C modules", p.profile),
            mib(python),
            python as f64 / debian_unpacked.max(1) as f64,
            mib(libs),
            mib(toolchain),
            mib(site)
        )?;
        let elsewhere: Vec<(&String, &u64)> = p.stdlib_modules.iter().filter(|(m, _)| !debian_has(m)).collect();
        if !elsewhere.is_empty() {
            let same = python - elsewhere.iter().map(|(_, b)| **b).sum::<u64>();
            let names: Vec<&str> = elsewhere.iter().map(|(m, _)| m.as_str()).collect();
            writeln!(
                t,
                "  {:44} {:>9.1}   ({:.2} of Debian's four; without {}, not in them)",
                "    the same modules as Debian's four",
                mib(same),
                same as f64 / debian_unpacked.max(1) as f64,
                names.join(", ")
            )?;
        }
    }
    let (mut du, mut dc) = (0, 0);
    for (name, unpacked, deb) in &debian.packages {
        writeln!(t, "  {:44} {:>9.1} {:>9.1} (.deb)", format!("Debian {} {}", debian.suite, name), mib(*unpacked), mib(*deb))?;
        du += unpacked;
        dc += deb;
    }
    writeln!(t, "  {:44} {:>9.1} {:>9.1} (.deb)", format!("Debian {} {} {} (the four)", debian.suite, debian.python, debian.version), mib(du), mib(dc))?;
    writeln!(t, "  (ours include pip and the manifest's packages, the C libraries and the toolchain's /lib; Debian's four need libc6, libssl, ... besides)")?;
    let v = json!({
        "ours": ours,
        "debian": {"suite": debian.suite, "version": debian.version, "packages": debian.packages.iter().map(|(n, u, c)| json!({"name": n, "unpacked_bytes": u, "deb_bytes": c})).collect::<Vec<_>>(), "unpacked_bytes": du, "deb_bytes": dc},
    });
    Ok((v, t))
}
