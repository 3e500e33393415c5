//! Progress output: live bars on a terminal, plain lines otherwise (CI).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub fn is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// A byte counter for one download; hidden when not on a terminal.
pub fn download_bar(name: String, len: Option<u64>) -> ProgressBar {
    if !is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(l) => ProgressBar::new(l),
        None => ProgressBar::new_spinner(),
    };
    bar.set_style(ProgressStyle::with_template("{msg:30} {bytes:>10}/{total_bytes:10} {bytes_per_sec:>12} {wide_bar}").expect("static template"));
    bar.set_message(name);
    bar
}

/// The task view: one spinner per running task under an overall bar.
pub struct TaskView {
    multi: MultiProgress,
    overall: ProgressBar,
    live: bool,
}

impl TaskView {
    pub fn new(total: usize) -> TaskView {
        let live = is_terminal();
        let multi = MultiProgress::with_draw_target(if live { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() });
        let overall = multi.add(ProgressBar::new(total as u64));
        overall.set_style(ProgressStyle::with_template("[{elapsed_precise}] {pos}/{len} tasks {wide_bar}").expect("static template"));
        TaskView { multi, overall, live }
    }

    pub fn start(&self, label: &str) -> ProgressBar {
        if !self.live {
            eprintln!("  start {label}");
            return ProgressBar::hidden();
        }
        let bar = self.multi.insert_before(&self.overall, ProgressBar::new_spinner());
        bar.set_style(ProgressStyle::with_template("  {spinner} {msg} ({elapsed})").expect("static template"));
        bar.set_message(label.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }

    pub fn finish(&self, bar: ProgressBar, line: &str) {
        bar.finish_and_clear();
        self.multi.remove(&bar);
        self.overall.inc(1);
        self.println(line);
    }

    pub fn println(&self, line: &str) {
        if self.live {
            let _ = self.multi.println(line);
        } else {
            eprintln!("{line}");
        }
    }

    pub fn done(&self) {
        self.overall.finish_and_clear();
    }
}
