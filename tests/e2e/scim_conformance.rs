//! SCIM conformance as an outside checker sees it: PyPI `scim2-tester` (through `scim2-cli`,
//! installed by scripts/test.sh) runs its RFC 7643/7644 checks against `/scim/v2` of a real
//! daemon. It fills attributes with random values, so one run proves little: the test runs it
//! `SCIM_CHECKER_RUNS` times (default 5), pools the results and requires a pass
//! ratio of at least 0.95.

use crate::harness::daemon::Daemon;
use std::collections::BTreeMap;
use std::time::Duration;

/// Pooled pass ratio the daemon must reach.
const REQUIRED_RATIO: f64 = 0.95;
/// Runs when `SCIM_CHECKER_RUNS` is not set: enough to catch a check that fails
/// only for some random values, short enough for every CI run.
const DEFAULT_RUNS: usize = 5;
/// One checker run takes a few seconds; a hang (of the daemon or of the checker) fails the
/// test instead of stalling the suite.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// The checker's verdicts (`scim2_tester.Status`). SUCCESS, COMPLIANT and ACCEPTABLE are
/// conforming behaviour (a MUST, a SHOULD, a MAY met); SKIPPED is not counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Pass,
    Fail,
    Skipped,
}

fn verdict(status: &str) -> Option<Verdict> {
    match status {
        "SUCCESS" | "COMPLIANT" | "ACCEPTABLE" => Some(Verdict::Pass),
        "DEVIATION" | "ERROR" | "CRITICAL" => Some(Verdict::Fail),
        "SKIPPED" => Some(Verdict::Skipped),
        _ => None,
    }
}

/// One run's checks: (verdict, "STATUS title", reason lines).
fn parse(stdout: &str) -> Vec<(Verdict, String, String)> {
    let mut out: Vec<(Verdict, String, String)> = Vec::new();
    for line in stdout.lines() {
        if let Some(reason) = line.strip_prefix("  ") {
            if let Some(last) = out.last_mut() {
                last.2.push_str(reason.trim());
                last.2.push(' ');
            }
            continue;
        }
        let Some((status, _)) = line.split_once(' ') else {
            continue;
        };
        if let Some(v) = verdict(status) {
            out.push((v, line.to_string(), String::new()));
        }
    }
    out
}

#[tokio::test]
async fn the_scim2_tester_checker_passes_at_least_95_percent_of_its_checks() {
    // Not an ACCESSKEYD_* name: daemons other tests start read those as configuration.
    let runs = std::env::var("SCIM_CHECKER_RUNS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_RUNS);
    // An OpenID Connect directory with the defaults (no removal grace), as most installations
    // run it; the checker never signs in, so its issuer is never asked.
    let d = Daemon::start_with(
        None,
        "\n[[directories]]\nid = \"idp\"\nkind = \"oidc\"\nissuer = \"http://127.0.0.1:9\"\n\
         client_id = \"accesskeyd\"\nclient_secret = \"secret\"\n",
        &[],
    )
    .await;
    let (_, token) = accesskeyd::scim::create_token(&d.app, &"idp".into(), "conformance checker")
        .await
        .expect("SCIM token");

    let (mut passed, mut total) = (0usize, 0usize);
    // Failing check → (how often, a reason the checker gave).
    let mut failures: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for run in 1..=runs {
        // The daemon serves on this test's runtime: the checker is waited for off it. Under
        // coreutils' `timeout`, so that a hang ends the run and is reported.
        let mut cmd = std::process::Command::new("timeout");
        cmd.arg(RUN_TIMEOUT.as_secs().to_string())
            .args(["scim2", "test"])
            // The token goes through the environment: the command line is visible to others.
            .env("SCIM_CLI_URL", format!("{}/scim/v2", d.url))
            .env(
                "SCIM_CLI_HEADERS",
                format!("Authorization: Bearer {}", token.expose()),
            )
            .env("NO_COLOR", "1");
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .expect("checker task")
            .expect("cannot run `timeout scim2`");
        match out.status.code() {
            Some(124) => panic!("checker run {run} did not finish within {RUN_TIMEOUT:?}"),
            Some(127) => panic!(
                "`scim2` is not installed: scripts/test.sh installs it (pip: scim2-tester, scim2-cli)"
            ),
            _ => {}
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let checks = parse(&stdout);
        assert!(
            !checks.is_empty(),
            "checker run {run} reported no checks:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for (v, title, reason) in checks {
            match v {
                Verdict::Pass => {
                    passed += 1;
                    total += 1;
                }
                Verdict::Fail => {
                    total += 1;
                    let entry = failures.entry(title).or_insert((0, reason));
                    entry.0 += 1;
                }
                Verdict::Skipped => {}
            }
        }
    }
    let ratio = passed as f64 / total as f64;
    println!("scim2-tester: {passed} of {total} checks passed over {runs} run(s): {ratio:.3}");
    for (title, (n, reason)) in &failures {
        println!("  {n}x {title}: {}", reason.trim());
    }
    assert!(
        ratio >= REQUIRED_RATIO,
        "scim2-tester pass ratio {ratio:.3} ({passed}/{total} over {runs} runs) is below \
         {REQUIRED_RATIO}; failing checks: {failures:#?}"
    );
}
