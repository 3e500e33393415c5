//! The bodies of the recipe tasks, and how their commands run: each task
//! writes `temp/run.do_<task>` (the exact environment and commands, a
//! script that can be run again by hand) and `temp/log.do_<task>`; a
//! failure reports the recipe, the task, the log's last lines and its path.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};

use crate::base::process;
use crate::base::sysroot;
use crate::classes::{Builtin, Ctx, Step};
use crate::engine::sstate::Sstate;
use crate::engine::tasks::{Kind, Plan, Scope};
use crate::model::build::Phase;
use crate::sources::fetch::Fetcher;

pub struct Worker {
    pub fetcher: Fetcher,
    pub patches_dir: PathBuf,
    pub prefix: String,
    pub build_sys: String,
    pub launcher: Option<String>,
    /// Lines of a failed task's log to show.
    pub tail_lines: usize,
}

impl Worker {
    /// The worker of a build of `project`.
    pub fn for_project(project: &crate::engine::project::Project, loaded: &crate::model::manifest::Loaded) -> Result<Worker> {
        Ok(Worker {
            fetcher: Fetcher::new(project.dl_dir.clone()),
            patches_dir: project.root.join("patches"),
            prefix: loaded.manifest.distro.prefix.clone(),
            build_sys: crate::machine::build_sys::triplet()?,
            launcher: std::env::var("CROSSPYTHON_CC_LAUNCHER").ok().filter(|l| !l.is_empty()),
            tail_lines: 40,
        })
    }

    /// Size of the recipe's source in the download cache, in MiB (0 when not fetched yet).
    pub fn source_mib(&self, node: &crate::model::resolve::Node) -> f64 {
        node.sources
            .iter()
            .filter_map(|s| std::fs::metadata(self.fetcher.dl_dir.join(crate::sources::fetch::file_name(s.url.get_ref()))).ok())
            .map(|m| m.len() as f64 / 1048576.0)
            .next()
            .unwrap_or(0.0)
    }

    /// Restore a recipe's `populate_sysroot` output from the artifact cache.
    pub fn restore(&self, plan: &Plan, t: usize, sstate: &Sstate) -> Result<()> {
        let u = plan.tasks[t].unit.expect("populate_sysroot belongs to a unit");
        let unit = &plan.units[u];
        sstate.restore(&plan.sstate_name(u), &plan.tasks[t].sig, &unit.dirs.sysroot_destdir, &plan.build_dir)?;
        plan.write_stamp(t)
    }

    /// Run task `t`. It holds one of the build's `jobs` job tokens; a
    /// recipe whose build says `${PARALLEL_JOBS}` (CPython's PGO profile
    /// run, `regrtest -j`) takes the tokens free when it starts as well,
    /// and keeps them until it ends: its processes count against `--jobs`.
    pub fn run(&self, plan: &Plan, t: usize, jobserver: &jobserver::Client, jobs: usize, sstate: &Sstate) -> Result<()> {
        let task = &plan.tasks[t];
        if task.kind == Kind::Rootfs {
            let a = task.arch.expect("rootfs belongs to an arch");
            crate::engine::image::rootfs(plan, a).with_context(|| format!("{} failed", plan.label(t)))?;
            return plan.write_stamp(t);
        }
        let u = task.unit.expect("recipe task");
        let unit = &plan.units[u];
        let d = &unit.dirs;
        fs::create_dir_all(&d.temp)?;
        let log_path = d.temp.join(format!("log.{}", task.kind.name()));
        let mut log = File::create(&log_path).with_context(|| format!("cannot create {}", log_path.display()))?;
        let (arch, config_site) = match &unit.scope {
            Scope::Native => (None, None),
            Scope::Arch(name) => {
                let ab = plan.arches.iter().find(|a| &a.name == name).expect("the unit's arch is in the plan");
                (Some((&ab.arch, ab.toolchain_for(&unit.node))), Some(ab.config_site.as_path()))
            }
        };
        let extra: Vec<jobserver::Acquired> = if unit.node.build.mentions("${PARALLEL_JOBS}") && matches!(task.kind, Kind::Compile | Kind::Install) {
            free_tokens(jobserver, jobs - 1, std::time::Duration::from_millis(200))
        } else {
            vec![]
        };
        // The tokens it holds are in no pipe its make could read: its make
        // gets them as a jobserver of its own. On the build's, a PGO build
        // compiled its two builds one file at a time while its tokens waited
        // for the profile run (python3 on aarch64: 3m01s where `make -j2`
        // takes 1m45s).
        let own_jobserver;
        let jobserver = if extra.is_empty() {
            jobserver
        } else {
            own_jobserver = jobserver::Client::new(extra.len()).context("cannot make a jobserver for the task's own job tokens")?;
            &own_jobserver
        };
        let ctx = Ctx {
            node: &unit.node,
            dirs: d,
            target: arch,
            prefix: &self.prefix,
            build_sys: &self.build_sys,
            config_site,
            launcher: self.launcher.as_deref(),
            parallel_jobs: 1 + extra.len(),
        };
        let result = match task.kind {
            Kind::Fetch => self.fetcher.fetch(&unit.node.name, &unit.node.sources, &mut log).map(|_| ()),
            Kind::Unpack => self.unpack(&ctx, &mut log),
            Kind::Patch => self.patch(&ctx, &mut log),
            Kind::PrepareRecipeSysroot => prepare_recipe_sysroot(plan, u, &mut log),
            Kind::Configure => self.configure(&ctx, &mut log, jobserver),
            Kind::Compile => self.compile(plan, u, &ctx, &mut log, jobserver),
            Kind::Install => sysroot::remove(&d.image).and_then(|_| {
                fs::create_dir_all(&d.image)?;
                self.steps(&ctx, Phase::Install, ctx.steps(Phase::Install)?, &mut log, jobserver)
            }),
            Kind::PopulateSysroot => {
                sysroot::populate(&d.image, &d.sysroot_destdir).and_then(|_| sstate.store(&plan.sstate_name(u), &task.sig, &d.sysroot_destdir, &plan.build_dir))
            }
            Kind::Rootfs => unreachable!("handled above"),
        };
        drop(log);
        result.map_err(|e| self.failure(&plan.label(t), &log_path, e))?;
        plan.write_stamp(t)
    }

    /// configure in a fresh `B`, after `autoreconf -fi` where the recipe asks.
    fn configure(&self, ctx: &Ctx, log: &mut File, jobserver: &jobserver::Client) -> Result<()> {
        sysroot::remove(&ctx.dirs.build)?;
        fs::create_dir_all(&ctx.dirs.build)?;
        if ctx.node.build.autoreconf {
            let step = Step::Run { argv: vec!["autoreconf".into(), "-fi".into()], cwd: ctx.dirs.src.clone() };
            self.steps(ctx, Phase::Configure, vec![step], log, jobserver)?;
        }
        self.steps(ctx, Phase::Configure, ctx.steps(Phase::Configure)?, log, jobserver)
    }

    /// compile, with configure's stamp away while it runs: a compile killed
    /// by SIGKILL leaves half-written objects that make takes for up to date
    /// (only SIGINT/SIGTERM let it delete them), so a compile that does not
    /// finish is redone from configure, which starts `B` afresh.
    fn compile(&self, plan: &Plan, u: usize, ctx: &Ctx, log: &mut File, jobserver: &jobserver::Client) -> Result<()> {
        let configure = plan.tasks.iter().position(|o| o.unit == Some(u) && o.kind == Kind::Configure);
        if let Some(c) = configure {
            let _ = fs::remove_file(plan.stamp_path(c));
        }
        self.steps(ctx, Phase::Compile, ctx.steps(Phase::Compile)?, log, jobserver)?;
        configure.map_or(Ok(()), |c| plan.write_stamp(c))
    }

    /// A failed task's error: the task, why, and the last lines of its log
    /// with the log's path, as BitBake prints them.
    fn failure(&self, label: &str, log_path: &Path, e: anyhow::Error) -> anyhow::Error {
        let tail = tail(log_path, self.tail_lines);
        let message =
            format!("{label} failed: {e:#}\n---- last {} lines of {} ----\n{tail}---- log: {}", self.tail_lines, log_path.display(), log_path.display());
        // Kept typed: the build names the other versions of the recipe.
        match e.downcast_ref::<crate::sources::fetch::Unfetchable>() {
            Some(u) => u.with_message(message).into(),
            None => anyhow!(message),
        }
    }

    fn unpack(&self, ctx: &Ctx, log: &mut File) -> Result<()> {
        let (archive, source) = self.fetcher.fetch(&ctx.node.name, &ctx.node.sources, log)?;
        writeln!(log, "unpacking {} into {}", archive.display(), ctx.dirs.src.display())?;
        crate::sources::unpack::unpack(&archive, &ctx.dirs.src, source.strip_components)
    }

    /// Apply the recipe's patch series, all or nothing: a patch that does
    /// not apply (found by a dry run) takes the ones before it back out, so
    /// the source is never left half patched.
    fn patch(&self, ctx: &Ctx, log: &mut File) -> Result<()> {
        let series = crate::engine::tasks::patch_files(&self.patches_dir, ctx.node)?;
        if series.is_empty() {
            return Ok(());
        }
        // The series applies to pristine sources: when it changed, the
        // source of the last unpack still carries the old series.
        writeln!(log, "unpacking {} again for the series", ctx.node.name)?;
        crate::base::sysroot::remove(&ctx.dirs.src)?;
        self.unpack(ctx, log)?;
        let mut applied: Vec<PathBuf> = vec![];
        for (name, _) in series {
            let path = self.patches_dir.join(&name);
            writeln!(log, "applying {}", path.display())?;
            let result = run_patch(&path, &ctx.dirs.src, &["--dry-run"], log).and_then(|()| run_patch(&path, &ctx.dirs.src, &[], log));
            if let Err(e) = result {
                for done in applied.iter().rev() {
                    writeln!(log, "taking back {}", done.display())?;
                    run_patch(done, &ctx.dirs.src, &["--reverse"], log).with_context(|| format!("cannot take back {} after {e}", done.display()))?;
                }
                return Err(e);
            }
            applied.push(path);
        }
        Ok(())
    }

    /// Run the steps of a task, writing `temp/run.<task>` first.
    fn steps(&self, ctx: &Ctx, phase: Phase, steps: Vec<Step>, log: &mut File, jobserver: &jobserver::Client) -> Result<()> {
        let task = phase.task_name();
        let env = ctx.env()?;
        // Scripts from the manifest see the recipe variables too; the
        // class's commands do not (make would take `S` or `D` as defaults
        // for its own variables).
        let script_vars = ctx.script_vars()?;
        let mut script_env = env.clone();
        script_env.extend(script_vars.clone());
        write_run_file(&ctx.dirs.temp.join(format!("run.{task}")), &env, &script_vars, &steps)?;
        for step in steps {
            match step {
                Step::CopySource => {
                    writeln!(log, "+ copy {} -> {}", ctx.dirs.src.display(), ctx.dirs.build.display())?;
                    sysroot::copy_tree(&ctx.dirs.src, &ctx.dirs.build)?;
                }
                Step::Run { argv, cwd } => {
                    let mut cmd = Command::new(&argv[0]);
                    cmd.args(&argv[1..]);
                    run_logged(cmd, &cwd, &env, log, jobserver, &crate::base::process::shell_words(&argv))?;
                }
                Step::Shell { script, cwd } => {
                    let mut cmd = Command::new("sh");
                    cmd.arg("-ec").arg(&script);
                    run_logged(cmd, &cwd, &script_env, log, jobserver, &script)?;
                }
                Step::Builtin(Builtin::CheckCpythonModules) => {
                    writeln!(log, "+ check CPython's optional modules ({}/Makefile)", ctx.dirs.build.display())?;
                    log.flush()?;
                    let compile_log = fs::read_to_string(ctx.dirs.temp.join("log.do_compile")).unwrap_or_default();
                    let summary = crate::classes::cpython::check_modules(&ctx.dirs.build, &compile_log)?;
                    writeln!(log, "{summary}")?;
                }
                Step::Builtin(Builtin::WriteSetupLocal) => {
                    let from = ctx.dirs.src.join("Modules/Setup.stdlib.in");
                    let to = ctx.dirs.build.join("Modules/Setup.local");
                    writeln!(log, "+ write {} (builtin_modules: {})", to.display(), ctx.node.build.builtin_modules.join(" "))?;
                    let text = fs::read_to_string(&from).with_context(|| format!("{}: cannot read {}", ctx.node.name, from.display()))?;
                    let setup = crate::classes::cpython::setup_local(&text, &ctx.node.build.builtin_modules)
                        .map_err(|e| anyhow::anyhow!("recipe {}, builtin_modules: {e}", ctx.node.name))?;
                    fs::create_dir_all(ctx.dirs.build.join("Modules"))?;
                    fs::write(&to, setup)?;
                }
                Step::Builtin(Builtin::FixBuildDetails) => {
                    writeln!(log, "+ build-details.json for the target")?;
                    let machine = ctx.target.map(|(arch, _)| arch.machine.as_str()).context("build-details.json is fixed for a target only")?;
                    if let Some(done) = crate::classes::cpython::fix_build_details(&ctx.dirs.build, &ctx.dirs.image, ctx.prefix, machine)? {
                        writeln!(log, "{done}")?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The job tokens free now, up to `n`. A pipe jobserver cannot be read
/// without blocking (and making it non-blocking would change it for every
/// `make`): a helper thread takes them, and a token it gets after `wait`
/// goes straight back.
fn free_tokens(client: &jobserver::Client, n: usize, wait: std::time::Duration) -> Vec<jobserver::Acquired> {
    let (tx, rx) = std::sync::mpsc::channel();
    let c = client.clone();
    std::thread::spawn(move || {
        for _ in 0..n {
            let Ok(token) = c.acquire() else { return };
            // A send fails once the task stopped waiting: the token drops, released.
            if tx.send(token).is_err() {
                return;
            }
        }
    });
    let deadline = std::time::Instant::now() + wait;
    let mut got = vec![];
    while got.len() < n {
        match rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())) {
            Ok(token) => got.push(token),
            Err(_) => break,
        }
    }
    got
}

/// `patch -p1` of one file in `src`, its output into the task log.
fn run_patch(path: &Path, src: &Path, extra: &[&str], log: &mut File) -> Result<()> {
    let mut cmd = Command::new("patch");
    cmd.args(["-p1", "--batch", "--no-backup-if-mismatch"]).args(extra).arg("-i").arg(path).current_dir(src);
    if !extra.contains(&"--reverse") {
        cmd.arg("--forward");
    }
    let out = process::output(&mut cmd)?;
    log.write_all(&out.stdout)?;
    log.write_all(&out.stderr)?;
    if !out.status.success() {
        let hunks: Vec<String> =
            String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains("FAILED") || l.contains("failed")).map(str::to_string).collect();
        bail!("patch {} does not apply to {}: {}", path.display(), src.display(), hunks.join("; "));
    }
    Ok(())
}

/// Hard-link the `populate_sysroot` output of the recipe's build-time
/// closure, and only that, into its own sysroots.
fn prepare_recipe_sysroot(plan: &Plan, u: usize, log: &mut File) -> Result<()> {
    let d = &plan.units[u].dirs;
    sysroot::remove(&d.recipe_sysroot)?;
    sysroot::remove(&d.recipe_sysroot_native)?;
    fs::create_dir_all(&d.recipe_sysroot)?;
    fs::create_dir_all(&d.recipe_sysroot_native)?;
    let mut owners = (BTreeMap::new(), BTreeMap::new());
    for &dep in &plan.units[u].closure {
        let du = &plan.units[dep];
        let (to, owners) = match du.scope {
            Scope::Native => (&d.recipe_sysroot_native, &mut owners.1),
            Scope::Arch(_) => (&d.recipe_sysroot, &mut owners.0),
        };
        writeln!(log, "{} -> {}", du.label(), to.display())?;
        sysroot::link_tree(&du.dirs.sysroot_destdir, to, &du.node.name, owners, &|_| false)?;
    }
    Ok(())
}

/// The environment every command starts from: nothing of the caller's but
/// what tools need to work, so that host CFLAGS, PKG_CONFIG_PATH or
/// PYTHONPATH never leak into a build.
const KEPT_ENV: [&str; 6] = ["HOME", "TERM", "USER", "LOGNAME", "TMPDIR", "SOURCE_DATE_EPOCH"];

fn run_logged(mut cmd: Command, cwd: &Path, env: &BTreeMap<String, String>, log: &mut File, jobserver: &jobserver::Client, shown: &str) -> Result<()> {
    writeln!(log, "+ cd {}\n+ {shown}", cwd.display())?;
    log.flush()?;
    cmd.current_dir(cwd).env_clear();
    for k in KEPT_ENV {
        if let Some(v) = std::env::var_os(k) {
            cmd.env(k, v);
        }
    }
    cmd.env("LC_ALL", "C").envs(env);
    jobserver.configure_make(&mut cmd);
    cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log.try_clone()?);
    if process::interrupted() {
        bail!("interrupted");
    }
    let status = process::run_stoppable(&mut cmd).with_context(|| format!("cannot run `{shown}` in {}", cwd.display()))?;
    if !status.success() {
        let first = shown.lines().next().unwrap_or_default();
        bail!("`{first}` exited with {status}");
    }
    Ok(())
}

fn write_run_file(path: &Path, env: &BTreeMap<String, String>, script_vars: &BTreeMap<String, String>, steps: &[Step]) -> Result<()> {
    let exports =
        |vars: &BTreeMap<String, String>| vars.iter().map(|(k, v)| format!("export {k}={}\n", crate::base::process::shell_quote(v))).collect::<String>();
    let mut s = String::from("#!/bin/sh -e\n# The environment and commands of this task; run it again by hand to debug.\n");
    s.push_str(&exports(env));
    for step in steps {
        match step {
            Step::Run { argv, cwd } => {
                s.push_str(&format!("cd {}\n{}\n", crate::base::process::shell_quote(&cwd.display().to_string()), crate::base::process::shell_words(argv)))
            }
            Step::Shell { script, cwd } => {
                s.push_str(&format!("cd {}\n(\n{}{script}\n)\n", crate::base::process::shell_quote(&cwd.display().to_string()), exports(script_vars)))
            }
            Step::CopySource => {
                let dir = |k: &str| crate::base::process::shell_quote(&format!("{}/", script_vars.get(k).map_or("", String::as_str)));
                s.push_str(&format!("cp -a {}. {}\n", dir("S"), dir("B")))
            }
            Step::Builtin(b) => s.push_str(&format!("# then crosspython itself: {b:?}\n")),
        }
    }
    fs::write(path, s)?;
    Ok(())
}

/// The last `n` lines of a log file.
pub fn tail(path: &Path, n: usize) -> String {
    let Ok(f) = File::open(path) else { return String::new() };
    let lines: Vec<String> = BufReader::new(f).lines().map_while(Result::ok).collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].iter().map(|l| format!("{l}\n")).collect()
}
