//! Running the task graph: which tasks need to run (stamps, the artifact
//! cache), in what order (longest remaining chain first), how many at once
//! (one GNU make jobserver for the whole build), and the report at the end
//! (task times and the critical path).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::base::progress::TaskView;
use crate::engine::sstate::Sstate;
use crate::engine::tasks::{Kind, Plan};
use crate::engine::work::Worker;

pub struct Options {
    pub jobs: usize,
    pub explain: bool,
    /// Recipes (node names) whose tasks run even when their stamps or the
    /// artifact cache have them (BitBake's `-f`).
    pub rebuild: Vec<String>,
    /// Recipes (node names) to bring up to date, with what they are built
    /// from, and nothing else: no tree is assembled (`pip install`'s
    /// recipe dependencies). Empty: the whole plan.
    pub only: Vec<String>,
}

/// What a run did, for the summary and the benchmarks.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Stats {
    pub wall_secs: f64,
    pub tasks_run: usize,
    pub tasks_total: usize,
    /// label -> seconds
    pub task_secs: BTreeMap<String, f64>,
    pub critical_path_secs: f64,
    pub critical_path: Vec<String>,
    pub restored_from_sstate: Vec<String>,
}

/// The tasks `populate_sysroot` of the named recipes waits for, its own included.
fn only(plan: &Plan, names: &[String]) -> Result<Vec<bool>> {
    let mut wanted = vec![false; plan.tasks.len()];
    let mut stack = vec![];
    for name in names {
        let u = plan.units.iter().position(|u| u.node.name == *name).with_context(|| format!("{name}: no such recipe in this build"))?;
        stack.push(plan.task(u, Kind::PopulateSysroot));
    }
    while let Some(t) = stack.pop() {
        if !std::mem::replace(&mut wanted[t], true) {
            stack.extend(&plan.tasks[t].deps);
        }
    }
    Ok(wanted)
}

/// How a needed task runs.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Skip,
    Run,
    /// `populate_sysroot` restored from the artifact cache.
    Restore,
}

fn modes(plan: &Plan, sstate: &Sstate, rebuild: &[String]) -> Vec<Mode> {
    let mut mode = vec![Mode::Skip; plan.tasks.len()];
    for (u, unit) in plan.units.iter().enumerate() {
        if rebuild.contains(&unit.node.name) {
            for kind in Kind::RECIPE {
                mode[plan.task(u, kind)] = Mode::Run;
            }
            continue;
        }
        let pop = plan.task(u, Kind::PopulateSysroot);
        if plan.is_stamped(pop) && unit.dirs.sysroot_destdir.exists() {
            continue;
        }
        if sstate.has(&plan.sstate_name(u), &plan.tasks[pop].sig) {
            mode[pop] = Mode::Restore;
            continue;
        }
        // Once one task of a recipe runs, every later one must too: each
        // works on what the one before it left.
        let mut rerun = false;
        for kind in Kind::RECIPE {
            let t = plan.task(u, kind);
            rerun |= !plan.is_stamped(t);
            if rerun {
                mode[t] = Mode::Run;
            }
        }
    }
    for (t, task) in plan.tasks.iter().enumerate() {
        if let (Kind::Rootfs, Some(a)) = (task.kind, task.arch) {
            let tree = crate::engine::image::tree_dir(&plan.build_dir, &plan.arches[a].name);
            let ours = crate::engine::image::ImageNote::read(&tree).is_ok_and(|n| n.rootfs_sig == task.sig);
            if !plan.is_stamped(t) || !ours || task.deps.iter().any(|&d| mode[d] != Mode::Skip) {
                mode[t] = Mode::Run;
            }
        }
    }
    mode
}

/// Refuses `--rebuild` of a recipe the build does not have, naming those it has.
fn check_rebuild(plan: &Plan, rebuild: &[String]) -> Result<()> {
    for r in rebuild {
        if !plan.units.iter().any(|u| u.node.name == *r) {
            let names: std::collections::BTreeSet<&str> = plan.units.iter().map(|u| u.node.name.as_str()).collect();
            let names: Vec<&str> = names.into_iter().collect();
            bail!("--rebuild {r}: no such recipe in this build; there are: {}", names.join(", "));
        }
    }
    Ok(())
}

/// How each task runs in this build: `modes`, narrowed to `--only`'s.
fn planned_modes(plan: &Plan, sstate: &Sstate, opts: &Options) -> Result<Vec<Mode>> {
    let mut mode = modes(plan, sstate, &opts.rebuild);
    if !opts.only.is_empty() {
        let wanted = only(plan, &opts.only)?;
        for (m, wanted) in mode.iter_mut().zip(wanted) {
            if !wanted {
                *m = Mode::Skip;
            }
        }
    }
    Ok(mode)
}

/// For each task the needed tasks that wait on it, and how many needed
/// tasks each waits on.
fn edges(plan: &Plan, needed: &[usize], mode: &[Mode]) -> (Vec<Vec<usize>>, Vec<usize>) {
    let mut dependents: Vec<Vec<usize>> = vec![vec![]; plan.tasks.len()];
    let mut waiting = vec![0; plan.tasks.len()];
    for &t in needed {
        if mode[t] == Mode::Restore {
            continue; // a restore needs nothing but the cache
        }
        for &d in &plan.tasks[t].deps {
            if mode[d] != Mode::Skip {
                dependents[d].push(t);
                waiting[t] += 1;
            }
        }
    }
    (dependents, waiting)
}

struct State {
    /// Remaining unfinished needed dependencies of each task.
    waiting: Vec<usize>,
    ready: Vec<usize>,
    running: usize,
    left: usize,
    failed: Vec<anyhow::Error>,
    started: BTreeMap<usize, (Instant, Instant)>,
}

/// The needed tasks, shared by the worker threads: each takes the ready
/// task with the longest chain after it, and a finished task makes ready
/// those that waited only on it.
struct Queue<'a> {
    state: Mutex<State>,
    cv: Condvar,
    rank: &'a [u64],
    dependents: &'a [Vec<usize>],
}

impl Queue<'_> {
    /// The next task to run; `None` when there is none left, or when a task
    /// failed or the user interrupted (then running tasks finish, no new
    /// one starts).
    fn take(&self) -> Option<usize> {
        let mut st = self.state.lock().unwrap();
        loop {
            let stop = !st.failed.is_empty() || crate::base::process::interrupted();
            if st.left == 0 || (stop && st.running == 0) || (stop && st.ready.is_empty()) {
                self.cv.notify_all();
                return None;
            }
            if !stop && !st.ready.is_empty() {
                let best = (0..st.ready.len()).max_by_key(|&i| self.rank[st.ready[i]]).unwrap();
                let t = st.ready.swap_remove(best);
                st.running += 1;
                return Some(t);
            }
            if stop {
                return None;
            }
            if st.ready.is_empty() && st.running == 0 {
                let left = st.left;
                st.failed.push(anyhow::anyhow!("internal error: {left} tasks wait on tasks that never run"));
                self.cv.notify_all();
                return None;
            }
            st = self.cv.wait(st).unwrap();
        }
    }

    /// `t` ended: when it ran (start, end), or why it failed.
    fn finish(&self, t: usize, ran: Result<(Instant, Instant)>) {
        let mut st = self.state.lock().unwrap();
        st.running -= 1;
        match ran {
            Ok(times) => {
                st.left -= 1;
                st.started.insert(t, times);
                for &d in &self.dependents[t] {
                    st.waiting[d] -= 1;
                    if st.waiting[d] == 0 {
                        st.ready.push(d);
                    }
                }
            }
            Err(e) => st.failed.push(e),
        }
        self.cv.notify_all();
    }
}

/// What a worker thread needs to run one task: a job token first, then
/// the task itself or its restore from the artifact cache.
struct Runner<'a> {
    plan: &'a Plan,
    worker: &'a Worker,
    sstate: &'a Sstate,
    opts: &'a Options,
    mode: &'a [Mode],
    client: &'a jobserver::Client,
    view: &'a TaskView,
}

impl Runner<'_> {
    fn run(&self, t: usize) -> Result<(Instant, Instant)> {
        let token = self.client.acquire();
        let label = self.plan.label(t);
        if self.opts.explain && self.mode[t] == Mode::Run {
            self.view.println(&format!("  why {label}: {}", self.plan.explain(t)));
        }
        let bar = self.view.start(&label);
        let start = Instant::now();
        let result = token.map_err(anyhow::Error::from).and_then(|_token| match self.mode[t] {
            Mode::Restore => self.worker.restore(self.plan, t, self.sstate),
            _ => self.worker.run(self.plan, t, self.client, self.opts.jobs, self.sstate),
        });
        let end = Instant::now();
        match result {
            Ok(()) => {
                let how = if self.mode[t] == Mode::Restore { " (from the artifact cache)" } else { "" };
                self.view.finish(bar, &format!("  done  {label}{how} in {}", human((end - start).as_secs_f64())));
                Ok((start, end))
            }
            Err(e) => {
                self.view.finish(bar, &format!("  FAILED {label}"));
                Err(e)
            }
        }
    }
}

pub fn run(plan: &Plan, worker: &Worker, sstate: &Sstate, opts: &Options) -> Result<Stats> {
    let t0 = Instant::now();
    check_rebuild(plan, &opts.rebuild)?;
    let mode = planned_modes(plan, sstate, opts)?;
    let needed: Vec<usize> = (0..plan.tasks.len()).filter(|&t| mode[t] != Mode::Skip).collect();
    let mut stats = Stats { tasks_total: plan.tasks.len(), ..Default::default() };
    if needed.is_empty() {
        stats.wall_secs = t0.elapsed().as_secs_f64();
        return Ok(stats);
    }
    let (dependents, waiting) = edges(plan, &needed, &mode);
    let rank = ranks(plan, &needed, &dependents, &previous_times(plan), &|u| worker.source_mib(&plan.units[u].node));
    let ready: Vec<usize> = needed.iter().copied().filter(|&t| waiting[t] == 0).collect();
    let queue = Queue {
        state: Mutex::new(State { waiting, ready, running: 0, left: needed.len(), failed: vec![], started: BTreeMap::new() }),
        cv: Condvar::new(),
        rank: &rank,
        dependents: &dependents,
    };
    let view = TaskView::new(needed.len());
    let client = jobserver::Client::new(opts.jobs)?;
    let runner = Runner { plan, worker, sstate, opts, mode: &mode, client: &client, view: &view };
    std::thread::scope(|s| {
        for _ in 0..opts.jobs {
            s.spawn(|| {
                while let Some(t) = queue.take() {
                    queue.finish(t, runner.run(t));
                }
            });
        }
    });
    view.done();

    let st = queue.state.into_inner().unwrap();
    stats.wall_secs = t0.elapsed().as_secs_f64();
    stats.tasks_run = st.started.len();
    for (&t, &(a, b)) in &st.started {
        stats.task_secs.insert(plan.label(t), (b - a).as_secs_f64());
        if mode[t] == Mode::Restore {
            stats.restored_from_sstate.push(plan.label(t));
        }
    }
    (stats.critical_path_secs, stats.critical_path) = critical_path(plan, &st.started, &mode);
    save_times(plan, &stats);
    if crate::base::process::interrupted() {
        bail!("interrupted; finished tasks are kept, run the same command again to resume");
    }
    if let Some(e) = st.failed.into_iter().next() {
        return Err(e);
    }
    Ok(stats)
}

/// Priority of each needed task: the longest chain of (estimated) task
/// times from it to the end of the build.
/// Without a previous run's times, a task's cost is guessed from the size of
/// its recipe's source: a rough but real measure of how much there is to compile.
fn ranks(plan: &Plan, needed: &[usize], dependents: &[Vec<usize>], previous: &BTreeMap<String, f64>, source_mib: &dyn Fn(usize) -> f64) -> Vec<u64> {
    let mut rank = vec![0u64; plan.tasks.len()];
    // Tasks are created in dependency order, so reverse order visits
    // dependents first.
    for &t in needed.iter().rev() {
        let task = &plan.tasks[t];
        let own = previous.get(&plan.label(t)).copied().unwrap_or_else(|| {
            let mib = task.unit.map(source_mib).unwrap_or(0.0);
            default_secs(task.kind) * (1.0 + mib / 4.0)
        });
        let after = dependents[t].iter().map(|&d| rank[d]).max().unwrap_or(0);
        rank[t] = (own * 1000.0) as u64 + after;
    }
    rank
}

fn default_secs(kind: Kind) -> f64 {
    match kind {
        Kind::Compile => 60.0,
        Kind::Configure => 20.0,
        Kind::Install => 10.0,
        _ => 1.0,
    }
}

fn times_file(plan: &Plan) -> PathBuf {
    plan.build_dir.join("buildstats/task-times.json")
}

fn previous_times(plan: &Plan) -> BTreeMap<String, f64> {
    std::fs::read(times_file(plan)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

fn save_times(plan: &Plan, stats: &Stats) {
    let mut times = previous_times(plan);
    times.extend(stats.task_secs.iter().map(|(k, v)| (k.clone(), *v)));
    if let Ok(bytes) = serde_json::to_vec_pretty(&times) {
        let _ = crate::engine::tasks::atomic_write(&times_file(plan), &bytes);
    }
    if let Ok(bytes) = serde_json::to_vec_pretty(stats) {
        let _ = crate::engine::tasks::atomic_write(&plan.build_dir.join("buildstats/last-build.json"), &bytes);
    }
}

/// The longest chain of task times among the tasks this run executed.
fn critical_path(plan: &Plan, ran: &BTreeMap<usize, (Instant, Instant)>, mode: &[Mode]) -> (f64, Vec<String>) {
    let mut best: BTreeMap<usize, (f64, Option<usize>)> = BTreeMap::new();
    for (&t, &(a, b)) in ran {
        let own = (b - a).as_secs_f64();
        let deps: Vec<usize> = if mode[t] == Mode::Restore { vec![] } else { plan.tasks[t].deps.clone() };
        let before = deps.iter().filter_map(|d| best.get(d).map(|&(s, _)| (s, *d))).max_by(|x, y| x.0.total_cmp(&y.0));
        let entry = match before {
            Some((s, d)) => (s + own, Some(d)),
            None => (own, None),
        };
        best.insert(t, entry);
    }
    let Some((&end, &(total, _))) = best.iter().max_by(|x, y| x.1 .0.total_cmp(&y.1 .0)) else {
        return (0.0, vec![]);
    };
    let mut path = vec![];
    let mut cur = Some(end);
    while let Some(t) = cur {
        path.push(format!("{} {}", plan.label(t), human((ran[&t].1 - ran[&t].0).as_secs_f64())));
        cur = best[&t].1;
    }
    path.reverse();
    (total, path)
}

pub fn human(secs: f64) -> String {
    let d = Duration::from_secs_f64(secs);
    if d.as_secs() >= 60 {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    } else {
        format!("{secs:.1}s")
    }
}

#[cfg(test)]
mod tests;
