use super::booted::{guest_junit, suite_report, Console, SuiteEnd};
use super::record::{checks_record, Memory};
use super::*;
use crate::deploy::regrtest::{Plan, Selection};
use crate::deploy::system::Ended;

#[test]
fn the_booted_memory_figures_read_side_by_side_with_the_boards_python() {
    // As mipsel's runtime package measured them on malta (session 17).
    let detail = r#"{"/usr/bin/python3.11": {"rss_numpy_kib": null, "rss_pass_kib": 7492, "startup_isolated_ms": 800, "startup_ms": 1048}, "checks_vmhwm_kib": 45748, "mem_available_kib": 201064, "mem_total_kib": 244228, "python3": {"rss_numpy_kib": 19628, "rss_pass_kib": 8856, "startup_isolated_ms": 1487, "startup_ms": 2624}}"#;
    let text = Memory::parse(detail).unwrap().to_string();
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    assert_eq!(lines[1], "python3 (ours)         peak RSS of -c pass 8.6 MiB, import numpy 19.2 MiB; startup -c pass 2624 ms, -I -S -c pass 1487 ms");
    assert_eq!(lines[2], "/usr/bin/python3.11    peak RSS of -c pass 7.3 MiB; startup -c pass 1048 ms, -I -S -c pass 800 ms");
    assert_eq!(lines[3], "ours / its: peak 1.18, startup 2.50 and 1.86");
    assert_eq!(lines[4], "the checks' peak RSS 44.7 MiB; 196.4 MiB of 238.5 MiB available after");
    // Under qemu-user the check measures nothing, and nothing is printed.
    assert!(Memory::parse("measured on a booted kernel only (qemu-test --system)").is_none());
}

#[test]
fn each_package_tested_keeps_its_own_checks_record_beside_the_trees() {
    assert_eq!(checks_record(None, false), "qemu-test-checks.json");
    assert_eq!(checks_record(None, true), "qemu-test-system-checks.json");
    let minimal = Path::new("/x/crosspython-3.14.7-aarch64-minimal.tar.zst");
    let runtime = Path::new("deploy/aarch64/crosspython-3.14.7-aarch64.tar.gz");
    assert_eq!(checks_record(Some(minimal), true), "crosspython-3.14.7-aarch64-minimal.qemu-test-system-checks.json");
    assert_eq!(checks_record(Some(runtime), false), "crosspython-3.14.7-aarch64.qemu-test-checks.json");
    // An archive of another name keeps it whole.
    assert_eq!(checks_record(Some(Path::new("board-image.tar.xz")), true), "board-image.tar.xz.qemu-test-system-checks.json");
}

#[test]
fn the_guests_junit_xml_comes_back_from_gzip_and_base64_or_says_what_broke() {
    use base64::Engine as _;
    let mut gz = flate2::write::GzEncoder::new(vec![], flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, b"<testsuites/>").unwrap();
    let text = base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap());
    assert_eq!(guest_junit(&text).unwrap(), "<testsuites/>");
    assert_eq!(guest_junit("").unwrap_err().to_string(), "the guest printed no JUnit XML (regrtest wrote none)");
    assert_eq!(guest_junit("not base64!").unwrap_err().to_string(), "its base64 is broken");
    assert_eq!(guest_junit("aGVsbG8=").unwrap_err().to_string(), "its gzip is broken");
}

#[test]
fn the_guests_console_gives_the_checks_the_boards_programs_and_the_suites_progress() {
    // As a malta guest prints it: the kernel's lines between /init's, CR LF
    // line ends from the serial console (CR CR LF where the tty adds one to
    // a program's own CR LF), a program's first line after its PROGRAM line,
    // the JUnit XML in chunks.
    let console = "[    0.000000] Linux version 6.1.0-50-4kc-malta\r\n\
        BOOTED 6.1.0-50-4kc-malta mips 2.76\r\n\
        CHECK {\"name\": \"import-ssl\", \"ok\": true, \"detail\": \"OpenSSL 3.5.7\"}\r\n\
        [   12.5] random: crng init done\r\n\
        CHECK {\"name\": \"tls-handshake\", \"ok\": false, \"detail\": \"refused\"}\r\n\
        CHECKS-EXIT 139\r\n\
        SUITE test.test_os\r\n\
        SUITE test_zlib\r\n\
        PROGRAM 0 /bin/ls /lib\r\n\
        mipsel-linux-gnu\r\r\n\
        PROGRAM 127 /usr/bin/python3.11 -c pass\r\n\
        /usr/bin/python3.11: not found\r\n\
        REGRTEST-EXIT 130\r\n\
        JUNIT H4sIAAAA\r\n\
        JUNIT AAAA==\r\n";
    let c = Console::read(console).unwrap();
    assert_eq!(c.booted.as_deref(), Some("6.1.0-50-4kc-malta mips 2.76"));
    let results: Vec<(&str, bool, &str)> = c.results.iter().map(|r| (r.name.as_str(), r.ok, r.detail.as_str())).collect();
    assert_eq!(
        results,
        [
            ("import-ssl", true, "OpenSSL 3.5.7"),
            ("tls-handshake", false, "refused"),
            ("checks-finished", false, "the check script ended with a segmentation fault (exit 139) after `tls-handshake`"),
            ("board-program ls", true, "/bin/ls /lib -> mipsel-linux-gnu"),
            ("board-program python3.11", false, "/usr/bin/python3.11 -c pass -> /usr/bin/python3.11: not found"),
        ]
    );
    assert_eq!(c.suite, ["test.test_os", "test_zlib"]);
    assert_eq!((c.junit.as_str(), c.regrtest_exit.as_deref()), ("H4sIAAAAAAAA==", Some("130")));
    // A guest that never reached /init has no BOOTED line; a broken CHECK
    // line is an error that quotes it.
    let panicked = Console::read("Kernel panic - not syncing\n").unwrap();
    let err = panicked.reached_init("Kernel panic - not syncing\n").unwrap_err().to_string();
    assert_eq!(err, "the guest never reached /init; console:\nKernel panic - not syncing", "the kernel's last words are shown");
    let err = Console::read("CHECK {not json\n").unwrap_err().to_string();
    assert_eq!(err, "bad check line: CHECK {not json");
    // A root too big for the guest's memory is unpacked in part: said first,
    // not only as the missing modules it leads to.
    let short = Console::read("[   16.094914] Initramfs unpacking failed: write error\r\nBOOTED 6.12 riscv64 17.74\r\nCHECKS-EXIT 1\r\n").unwrap();
    let results: Vec<(&str, bool)> = short.results.iter().map(|r| (r.name.as_str(), r.ok)).collect();
    assert_eq!(results, [("initramfs", false), ("checks-finished", false)]);
    assert!(short.results[0].detail.contains("`Initramfs unpacking failed: write error`") && short.results[0].detail.contains("memory_mib"));
}

#[test]
fn a_booted_apps_exit_output_time_and_peak_rss_come_back_from_the_console() {
    // As mipsel's malta printed them (session 29), a kernel line among them.
    let text = "BOOTED 6.1.0-50-4kc-malta mips 4.68\r\nAPP-EXIT 0\r\nAPP | RLIM_INFINITY -1\r\n[   9.1] random: crng init done\r\nAPP | \r\n\
                APP-ELAPSED 0m 3.70s\r\nAPP-MAXRSS 33872\r\nAPP-PAGE-SIZE 4096\r\nPOWERING-OFF\r\n";
    let c = Console::read(text).unwrap();
    assert_eq!((c.app_exit.as_deref(), c.app_elapsed.as_deref()), (Some("0"), Some("0m 3.70s")));
    assert_eq!(c.app_output, ["RLIM_INFINITY -1", ""], "its lines, an empty one kept, the kernel's not");
    // busybox's `time -v` counts Linux's KiB as pages: 4 times too much on
    // 4 KiB pages, the figure /proc/self/status's VmHWM gives is a quarter.
    assert_eq!(c.app_peak_rss_kib(), Some(8468));
    let sixteen_k = Console::read("APP-MAXRSS 33872\nAPP-PAGE-SIZE 16384\n").unwrap();
    assert_eq!(sixteen_k.app_peak_rss_kib(), Some(2117));
    // No page size (busybox printed none): no figure, not a wrong one.
    assert_eq!(Console::read("APP-MAXRSS 33872\n").unwrap().app_peak_rss_kib(), None);
    assert!(Console::read("BOOTED 6.1 mips 4.6\nPOWERING-OFF\n").unwrap().app_exit.is_none(), "an app that never ended has no exit status");
}

#[test]
fn a_booted_suite_that_ends_early_reports_what_finished_and_fails_its_finished_check() {
    let loaded = Loaded::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../recipes-manifest.toml")).unwrap();
    let plan = Plan::new(&loaded, "armhf", Selection::All, true, None, 2);
    let end = |ended| SuiteEnd { ended, limit: 9000, test_minutes: 125, path: Path::new("/b/armhf/qemu-system/log.console") };
    // Stopped by the host: no exit code, no XML; the progress lines say
    // what finished, the rest is `not run` and the next run resumes.
    let text = "SUITE test_bz2\nSUITE test_os\n0:00:12 load avg: 0.86 [1/2] test_bz2 passed\n";
    let (report, unfinished) = suite_report(&plan, "sig", &Console::read(text).unwrap(), text, &end(Ended::TimeLimit)).unwrap();
    let results: Vec<(&str, &str)> = report.modules.iter().map(|m| (m.module.as_str(), m.result.as_str())).collect();
    assert_eq!(results, [("test_bz2", "passed"), ("test_os", "not run")]);
    let unfinished = unfinished.expect("a run with files left fails cpython-tests-finished");
    assert_eq!((unfinished.ok, unfinished.detail.as_str()), (false, "the guest was stopped at the time limit (time limit 9000 s)"));
    assert!(!report.interrupted, "a time limit is not the user's Ctrl-C");
    // regrtest killed (the OOM killer's 137) is said so, with its code.
    let killed = format!("{text}REGRTEST-EXIT 137\n");
    let (_, unfinished) = suite_report(&plan, "sig", &Console::read(&killed).unwrap(), &killed, &end(Ended::PoweredOff)).unwrap();
    assert!(unfinished.unwrap().detail.starts_with("regrtest ended with exit status 137 and wrote no JUnit XML"));
    // Ctrl-C: the report says the run was interrupted.
    let (report, _) = suite_report(&plan, "sig", &Console::read(text).unwrap(), text, &end(Ended::Interrupted)).unwrap();
    assert!(report.interrupted);
}
