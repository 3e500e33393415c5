//! package: the target tree made fit for a board, by profile: staged with
//! the profile's files, stripped with the toolchain's `strip`, byte code
//! compiled in unchecked-hash mode, moved to the chosen prefix, checked,
//! then written as reproducible `.tar.gz` and `.tar.zst` archives with
//! `SHA256SUMS`, a file list, a size report and an SPDX SBOM next to them,
//! or installed into an existing root filesystem.

mod app;
pub mod archive;
mod checks;
mod install;

pub use app::App;
pub use install::install as install_over;
mod report;
mod stage;

use std::fs;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::engine::image::ImageNote;
use crate::engine::project::Project;
use crate::model::manifest::{Loaded, Profile};

pub struct Options {
    pub profile: Option<String>,
    /// Where the tree lives on the board; the manifest's prefix by default.
    pub prefix: Option<String>,
    /// Install into this root filesystem instead of writing archives.
    pub rootfs: Option<PathBuf>,
    pub force: bool,
    /// The application the `app` profile is cut to.
    pub app: Option<App>,
}

/// The profile named (or the manifest's default), with its `inherits`
/// chain folded in: the nearest setting wins, excludes add up.
pub fn profile(loaded: &Loaded, name: Option<&str>) -> Result<(String, Profile)> {
    let p = &loaded.manifest.package;
    let name = name.or(p.default_profile.as_deref()).unwrap_or("runtime").to_string();
    let mut chain = vec![];
    let mut at = Some(name.clone());
    while let Some(n) = at {
        if chain.iter().any(|(c, _): &(String, &Profile)| *c == n) {
            bail!("package profile `{n}` inherits itself ({})", loaded.path.display());
        }
        let Some(pr) = p.profile.get(&n) else {
            bail!("no package profile `{n}` in {}; known: {}", loaded.path.display(), p.profile.keys().cloned().collect::<Vec<_>>().join(", "));
        };
        at = pr.inherits.clone();
        chain.push((n, pr));
    }
    let mut out = Profile::default();
    for (_, pr) in chain.iter().rev() {
        out.description = pr.description.clone();
        out.strip = pr.strip.or(out.strip);
        out.pyc = pr.pyc.or(out.pyc);
        out.pyc_opt_levels = pr.pyc_opt_levels.clone().or(out.pyc_opt_levels);
        out.exclude.extend(pr.exclude.iter().cloned());
        out.zip_keep.extend(pr.zip_keep.iter().cloned());
        out.app = pr.app.or(out.app);
        out.bench_app = pr.bench_app.clone().or(out.bench_app);
    }
    Ok((name, out))
}

impl Output {
    /// The `.tar.zst` archive's file name.
    pub fn archive(&self) -> Option<&str> {
        self.archives.iter().map(|(n, _)| n.as_str()).find(|n| n.ends_with(".tar.zst"))
    }
}

/// What `package` wrote.
#[derive(Debug, Default, serde::Serialize)]
pub struct Output {
    pub profile: String,
    pub unpacked_bytes: u64,
    pub files: usize,
    /// Archive file name and size.
    pub archives: Vec<(String, u64)>,
    /// Unpacked bytes by component of the size report.
    pub components: std::collections::BTreeMap<String, u64>,
    /// Bytes of each stdlib module or package (`email`, `os`).
    pub stdlib_modules: std::collections::BTreeMap<String, u64>,
}

/// A profile of the tree staged for a board and checked: what `package`
/// archives or installs, and what `bench` runs.
pub struct Prepared {
    pub profile_name: String,
    pub profile: Profile,
    /// The staged copy: `<build>/<arch>/package/root`.
    pub root: PathBuf,
    note: ImageNote,
    graph: crate::model::resolve::Graph,
    python_version: String,
    /// `3.14` (`3.14t` free-threaded).
    pyver: String,
    from_prefix: String,
    prefix: String,
}

/// Stages the profile `opts` names (byte code as the board gets it:
/// unchecked-hash, no sources where the profile says so) and runs the ELF
/// checks on it; the caller archives or installs it.
pub fn prepare(project: &Project, loaded: &Loaded, arch: &str, opts: &Options) -> Result<Prepared> {
    let tree = project.tree(arch);
    if !tree.exists() {
        bail!("{} does not exist; run `cargo xtask build --arch {arch}` first", tree.display());
    }
    let note = ImageNote::read(&tree)?;
    let (profile_name, profile) = profile(loaded, opts.profile.as_deref())?;
    let graph = crate::model::resolve::resolve(loaded, arch)?;
    let python =
        graph.nodes.iter().find(|n| n.is_interpreter() && !n.is_native()).context("the image has no Python interpreter (a recipe of the cpython class)")?;
    let from_prefix = loaded.manifest.distro.prefix.clone();
    let prefix = opts.prefix.clone().unwrap_or_else(|| from_prefix.clone());
    if !prefix.starts_with('/') || prefix.len() < 2 || prefix.contains("..") {
        bail!("--prefix {prefix}: give an absolute directory such as /usr/local or /opt/python3");
    }
    let work = project.build_dir.join(arch).join("package");
    fs::create_dir_all(&work)?;
    let pyver = crate::python::crosspip::ldversion(&tree, &from_prefix, &python.pv().major_minor());
    let selection = match (profile.app.unwrap_or(false), &opts.app) {
        (true, Some(app)) => {
            let build_python = note.build_python.as_deref().context("the tree's build note names no build python; rebuild the tree")?;
            let stdlib = tree.join(from_prefix.trim_start_matches('/')).join("lib").join(format!("python{pyver}"));
            let sel = app::Selection::find(build_python, &stdlib, app)?;
            eprintln!("{}: {} modules of the stdlib and site-packages are imported by it or by the interpreter's start", app.file.display(), sel.modules);
            Some(sel)
        }
        (true, None) => bail!("the {profile_name} profile keeps what an application imports: name it with --app <file.py>"),
        (false, Some(_)) => bail!("--app needs a profile that keeps only what the application imports (--profile app)"),
        (false, None) => None,
    };
    // This build's directories, and those of other builds of this machine
    // that the tree's debug information names (zig's compile cache and the
    // artifact cache serve them all).
    let mut build_paths = vec![project.build_dir.clone(), crate::engine::image::sysroots_dir(&project.build_dir), work.clone()];
    for other in crate::machine::debug_info::build_dirs_named(&tree, arch)? {
        if !build_paths.contains(&other) {
            build_paths.push(other);
        }
    }
    // And where its toolchains live: the tree names them (sysconfig's `CC`
    // serves crossenv), a stripped package must not (stage names tools by
    // file name). Debug information that a profile keeps names the
    // compiler's own headers there, as it would name /usr/include.
    let toolchains = crate::machine::toolchain::toolchains_dir(&project.cache_dir);
    if profile.strip.is_some_and(|s| s != crate::model::manifest::Strip::None) {
        build_paths.push(toolchains.clone());
    }
    let staged = stage::stage(&stage::Request {
        tree: &tree,
        work: &work,
        note: &note,
        profile: &profile,
        from_prefix: &from_prefix,
        prefix: &prefix,
        pyver: pyver.clone(),
        app: selection.as_ref(),
        build_paths: &build_paths,
        toolchains: &toolchains,
    })
    .with_context(|| format!("cannot stage the {profile_name} profile of {}", tree.display()))?;
    let board = crate::machine::tree_check::BoardLibs::new(&loaded.manifest.libc, loaded.manifest.arch[arch].libc, note.toolchain_glibc);
    let checked = checks::check(&staged.root, &loaded.manifest.arch[arch].elf, &build_paths, &board)?;
    eprint!("{}", checked);
    for w in &staged.warnings {
        eprintln!("warning: {w}");
    }
    let python_version = python.version.clone();
    Ok(Prepared { profile_name, profile, root: staged.root, note, graph, python_version, pyver, from_prefix, prefix })
}

pub fn package(project: &Project, loaded: &Loaded, arch: &str, opts: &Options) -> Result<Output> {
    let Prepared { profile_name, profile, root, note, graph, python_version, pyver, from_prefix, prefix } = prepare(project, loaded, arch, opts)?;
    if let Some(rootfs) = &opts.rootfs {
        install::install(&root, rootfs, opts.force)?;
        return Ok(Output { profile: profile_name, ..Default::default() });
    }
    let deploy = project.deploy_dir(arch);
    fs::create_dir_all(&deploy)?;
    let suffix = if profile_name == "runtime" && opts.prefix.is_none() { String::new() } else { format!("-{profile_name}") };
    let relocated = if opts.prefix.is_some() { format!("-{}", prefix.trim_matches('/').replace('/', "-")) } else { String::new() };
    // A free-threaded interpreter is named as CPython names it: 3.14.7t.
    let threading = if pyver.ends_with('t') { "t" } else { "" };
    let stem = format!("crosspython-{python_version}{threading}-{arch}{suffix}{relocated}");
    let epoch = crate::base::reproducible::source_date_epoch()?;
    let mut sums = vec![];
    let mut archives = vec![];
    for format in archive::Format::ALL {
        let name = format!("{stem}.{}", format.extension());
        let out = deploy.join(&name);
        archive::write(&root, &out, format, epoch)?;
        let sha = crate::sources::fetch::sha256_file(&out)?;
        let size = fs::metadata(&out)?.len();
        println!("{}: {:.1} MiB, sha256 {sha}", out.display(), size as f64 / 1048576.0);
        sums.push(format!("{sha}  {name}\n"));
        archives.push((name, size));
    }
    let (files, unpacked_bytes, file_count) = report::file_list(&root)?;
    crate::engine::tasks::atomic_write(&deploy.join(format!("{stem}.files.txt")), files.as_bytes())?;
    let report::Sizes { text: sizes, components, stdlib_modules } = report::sizes(&root, &note, &from_prefix, &prefix, &archives)?;
    crate::engine::tasks::atomic_write(&deploy.join(format!("{stem}.sizes.txt")), sizes.as_bytes())?;
    print!("{sizes}");
    let sbom = report::sbom(loaded, &graph, &root, &note, &stem, epoch)?;
    crate::engine::tasks::atomic_write(&deploy.join(format!("{stem}.spdx.json")), &serde_json::to_vec_pretty(&sbom)?)?;
    let sums_path = deploy.join(format!("{stem}.SHA256SUMS"));
    crate::engine::tasks::atomic_write(&sums_path, sums.concat().as_bytes())?;
    println!(
        "{} ({profile_name}: {}): {}.{{tar.gz,tar.zst,files.txt,sizes.txt,spdx.json,SHA256SUMS}}",
        arch,
        profile.description,
        deploy.join(&stem).display()
    );
    Ok(Output { profile: profile_name, unpacked_bytes, files: file_count, archives, components, stdlib_modules })
}
