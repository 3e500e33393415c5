//! The runtime phase: our interpreters and Debian's under the same
//! qemu-user, alternating run by run: startup, imports, CPU-bound cases.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::debian::Debian;
use super::options::variant_build_dir;
use super::plan::{median, Options};
use crate::engine::project::Project;
use crate::model::manifest::Loaded;

pub(super) struct Interp {
    pub(super) name: String,
    pub(super) root: PathBuf,
    pub(super) python: PathBuf,
    /// The same program with its symbols (ours: the tree's, which the
    /// package strips) to name the profile's functions.
    pub(super) symbols: PathBuf,
    /// Where the files of `root` that are ours have their symbols (the
    /// tree, as `root` has them at the same paths), for shared objects.
    pub(super) unstripped: Option<PathBuf>,
}

impl Interp {
    /// The interpreter with `args` under the arch's qemu-user, as every
    /// runtime case and profile count runs it.
    pub(super) fn command(&self, arch: &crate::model::manifest::Arch, args: &[String]) -> Command {
        let mut cmd = crate::machine::runner::TargetRunner::new(arch, &self.root).command(&self.python, false);
        cmd.args(args);
        cmd.env("LC_ALL", "C.UTF-8").env("PYTHONDONTWRITEBYTECODE", "1").env("HOME", "/tmp").stdin(Stdio::null());
        cmd
    }
}

/// The interpreters of a run, each in a board root of its own; the roots
/// live as long as this.
pub(super) struct Lineup {
    pub(super) _stage: tempfile::TempDir,
    pub(super) interps: Vec<Interp>,
    /// What of ours runs, for the tables: `the runtime package`.
    pub(super) ours: String,
}

/// Our interpreters: the build directory's own tree (unless `default` is
/// a variant), each variant the options phase built; then Debian's.
///
/// Each runs as a user's board has it: Debian's root with our package (the
/// manifest's default profile, staged by `package`) installed over it at the
/// prefix as `package --rootfs` installs it (Debian's own: the root alone).
/// The package, not the tree: its byte code is unchecked-hash and, where the
/// profile says, sourceless, where the tree's is checked-hash (the build's
/// `SOURCE_DATE_EPOCH` makes `compileall` hash every source again at each
/// import: 1.7% of `-I -S -c pass` and 3.7% of the imports case on aarch64).
/// All roots side by side in one staging directory, so that every
/// interpreter's path is its board path under the same parent: CPython's
/// start costs about 30,000 guest instructions per character of the
/// interpreter's path (getpath). The same C library and loader for all
/// (qemu's `-L`): only the interpreters differ.
pub(super) fn interpreters(project: &Project, loaded: &Loaded, o: &Options, debian: &Debian) -> Result<Lineup> {
    let prefix = loaded.manifest.distro.prefix.trim_start_matches('/');
    let mut builds = vec![];
    if !o.variants.iter().any(|v| v == "default") {
        let features: Vec<String> =
            crate::engine::image::ImageNote::read(&project.tree(&o.arch)).map(|n| n.features.into_values().flatten().collect()).unwrap_or_default();
        builds.push((if features.is_empty() { "default".into() } else { features.join("+") }, project.clone()));
    }
    for name in &o.variants {
        let label = o.toolchain.as_deref().map_or(name.clone(), |t| format!("{name}@{t}"));
        let variant = Project { build_dir: variant_build_dir(o, name), ..project.clone() };
        let python = variant.tree(&o.arch).join(prefix).join("bin/python3");
        if python.exists() {
            builds.push((label, variant));
        } else {
            eprintln!("note: no {name} build to run ({} is missing); `bench --only options` builds it", python.display());
        }
    }
    if builds.is_empty() {
        bail!(
            "bench --arch {}: none of our interpreters to run against Debian's: no build of {} exists ({}); `bench --only options` builds them",
            o.arch,
            o.variants.join(", "),
            o.variants.iter().map(|v| variant_build_dir(o, v).display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    let parent = debian.root.parent().context("Debian's root has no parent directory")?;
    let stage =
        tempfile::Builder::new().prefix("boards-").tempdir_in(parent).with_context(|| format!("cannot make a staging directory in {}", parent.display()))?;
    let mut interps = vec![];
    let mut ours = String::new();
    for (k, (name, build)) in builds.into_iter().enumerate() {
        let opts = crate::deploy::package::Options { profile: None, prefix: None, rootfs: None, force: false, app: None };
        let package = crate::deploy::package::prepare(&build, loaded, &o.arch, &opts).with_context(|| format!("cannot stage the package of {name}"))?;
        ours = format!("ours: the {} package over Debian's root, at {}", package.profile_name, loaded.manifest.distro.prefix);
        let root = board_root(stage.path(), k, &debian.root, Some(&package.root))?;
        let tree = build.tree(&o.arch);
        let symbols = tree.join(prefix).join("bin/python3");
        interps.push(Interp { name, python: root.join(prefix).join("bin/python3"), root, symbols, unstripped: Some(tree) });
    }
    let name = if debian.same_minor { format!("debian-{}", debian.suite) } else { format!("debian-{}-{}", debian.suite, debian.python) };
    let root = board_root(stage.path(), interps.len(), &debian.root, None)?;
    let python = root.join("usr/bin").join(&debian.python);
    interps.push(Interp { name, symbols: python.clone(), python, root, unstripped: None });
    for i in &interps {
        if !i.python.exists() {
            bail!("{} does not exist; build the tree first", i.python.display());
        }
    }
    Ok(Lineup { _stage: stage, interps, ours })
}

/// `<stage>/<index>`: Debian's root (hard-linked: nothing writes to it),
/// and `tree` (a staged package: `usr/local/...`) installed over it as
/// qemu-test installs it over a board root (`package --rootfs`).
pub(super) fn board_root(stage: &Path, index: usize, debian_root: &Path, tree: Option<&Path>) -> Result<PathBuf> {
    let root = stage.join(index.to_string());
    crate::base::sysroot::link_tree(debian_root, &root, "Debian's root", &mut BTreeMap::new(), &|rel| rel == Path::new(".complete"))
        .with_context(|| format!("cannot stage {} in {}", debian_root.display(), root.display()))?;
    if let Some(tree) = tree {
        crate::deploy::package::install_over(tree, &root, false)
            .with_context(|| format!("cannot install {} over Debian's root in {}", tree.display(), root.display()))?;
    }
    Ok(root)
}

/// One thing `runtime` times and `profile` counts: the interpreter's
/// arguments, and whether the program prints its own time (startup excluded).
pub(super) struct Case {
    pub(super) name: String,
    pub(super) args: Vec<String>,
    pub(super) inner: bool,
}

pub(super) fn cases(project: &Project) -> Vec<Case> {
    let workloads = project.root.join("tests/bench/workloads.py");
    let imports = "import json, re, decimal, sqlite3, ssl, asyncio, email.parser, xml.etree.ElementTree, zlib, lzma, ctypes";
    let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect();
    let mut cases = vec![
        Case { name: "startup (-c pass)".into(), args: argv(&["-c", "pass"]), inner: false },
        Case { name: "startup (-I -S -c pass)".into(), args: argv(&["-I", "-S", "-c", "pass"]), inner: false },
        Case { name: "import 11 stdlib modules".into(), args: argv(&["-c", imports]), inner: false },
    ];
    for w in ["nbody", "float", "json", "regex", "sqlite", "richards", "pidigits"] {
        cases.push(Case { name: w.into(), args: vec![workloads.display().to_string(), w.into()], inner: true });
    }
    cases
}

pub(super) fn runtime(project: &Project, loaded: &Loaded, o: &Options, debian: &Debian) -> Result<(Value, String)> {
    let arch = &loaded.manifest.arch[&o.arch];
    let lineup = interpreters(project, loaded, o, debian)?;
    let interps = &lineup.interps;
    let yardstick = interps.len() - 1;
    let run = |i: &Interp, args: &[String], inner: bool| -> Result<f64> {
        let mut cmd = i.command(arch, args);
        let started = Instant::now();
        let out = crate::base::process::checked(&mut cmd).with_context(|| format!("{} {}", i.name, args.join(" ")))?;
        let wall = started.elapsed().as_secs_f64();
        if inner {
            return String::from_utf8_lossy(&out.stdout).trim().parse::<f64>().context("a workload printed no time");
        }
        Ok(wall)
    };
    let ys = &interps[yardstick].name;
    let mut t = format!(
        "\nruntime ({} under {}, seconds, median of {} runs, alternating; ratio = ours / {ys}, < 1: ours is faster;\n         {})\n  {:26}",
        o.arch, arch.qemu, o.runs, lineup.ours, ""
    );
    for i in interps {
        write!(t, " {:>13}", i.name)?;
    }
    for i in &interps[..yardstick] {
        write!(t, " {:>13}", format!("ratio {}", i.name))?;
    }
    t.push('\n');
    let mut v = BTreeMap::new();
    for Case { name, args, inner } in &cases(project) {
        let mut times: Vec<Vec<f64>> = vec![vec![]; interps.len()];
        // Warm the page cache once for each, then alternate.
        for i in interps {
            run(i, args, *inner)?;
        }
        for _ in 0..o.runs {
            for (k, i) in interps.iter().enumerate() {
                times[k].push(run(i, args, *inner)?);
            }
        }
        let medians: Vec<f64> = times.iter_mut().map(|ts| median(ts)).collect();
        write!(t, "  {name:26}")?;
        for m in &medians {
            write!(t, " {m:>13.3}")?;
        }
        let mut case = serde_json::Map::new();
        let mut ratios = serde_json::Map::new();
        for (k, i) in interps.iter().enumerate() {
            case.insert(i.name.clone(), json!({"runs": times[k], "median": medians[k]}));
            if k != yardstick {
                let r = medians[k] / medians[yardstick];
                write!(t, " {r:>13.2}")?;
                ratios.insert(i.name.clone(), json!(r));
            }
        }
        t.push('\n');
        case.insert("ratio".into(), Value::Object(ratios));
        v.insert(name.clone(), Value::Object(case));
    }
    let names: Vec<&str> = interps.iter().map(|i| i.name.as_str()).collect();
    Ok((
        json!({"runs": o.runs, "interpreters": names, "ours": lineup.ours, "yardstick": ys, "debian_version": debian.version, "qemu": arch.qemu, "cases": v}),
        t,
    ))
}
