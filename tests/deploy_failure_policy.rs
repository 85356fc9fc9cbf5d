//! What Kubernetes does with a failed shard of the nightly batch (deploy/k8s/), for every
//! exit code the batch documents: the Job's podFailurePolicy is evaluated here the way
//! the Job controller evaluates it (rules in order, first match wins, no match counts),
//! so that a shard that is final for the night (2, 3, 4, 5) is never started again and
//! only crashes (1, 130, 137) are retried. The list of exit codes comes from
//! `ExitStatus::ALL`: a new exit code fails here until the manifest has a rule for it.

use std::path::Path;
use std::time::Duration;

use iat2i::batch::ExitStatus;
use serde::Deserialize;
use serde_yaml::Value;

/// The pod failure policy rules, as the batch/v1 API spells them.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    action: String,
    on_exit_codes: Option<OnExitCodes>,
    on_pod_conditions: Option<Vec<ConditionPattern>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OnExitCodes {
    container_name: Option<String>,
    operator: String,
    values: Vec<i32>,
}

#[derive(Debug, Deserialize)]
struct ConditionPattern {
    #[serde(rename = "type")]
    kind: String,
    status: Option<String>,
}

/// What the Job controller does with a pod: FailJob, FailIndex, Ignore, Count (the
/// podFailurePolicy actions), or Succeeded when the container exited 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Succeeded,
    FailJob,
    FailIndex,
    Ignore,
    Count,
}

impl Outcome {
    fn parse(word: &str) -> Option<Outcome> {
        Some(match word {
            "Succeeded" => Outcome::Succeeded,
            "FailJob" => Outcome::FailJob,
            "FailIndex" => Outcome::FailIndex,
            "Ignore" => Outcome::Ignore,
            "Count" => Outcome::Count,
            _ => return None,
        })
    }
}

/// A pod whose one container ended with `exit_code`, with these (type, status) conditions.
struct Pod<'a> {
    container: &'a str,
    exit_code: i32,
    conditions: &'a [(&'a str, &'a str)],
}

/// The Job controller's matching (pkg/controller/job/pod_failure_policy.go): rules in
/// order, the first whose requirement holds decides; a rule with an unknown action is
/// skipped; containers that exited 0 never match onExitCodes; no match is Count.
fn evaluate(rules: &[Rule], pod: &Pod) -> Outcome {
    if pod.exit_code == 0 {
        return Outcome::Succeeded;
    }
    for rule in rules {
        let Some(action) = Outcome::parse(&rule.action).filter(|a| *a != Outcome::Succeeded) else {
            continue;
        };
        let matched = if let Some(req) = &rule.on_exit_codes {
            let named = req
                .container_name
                .as_deref()
                .is_none_or(|n| n == pod.container);
            let listed = req.values.contains(&pod.exit_code);
            named
                && match req.operator.as_str() {
                    "In" => listed,
                    "NotIn" => !listed,
                    _ => false,
                }
        } else if let Some(patterns) = &rule.on_pod_conditions {
            pod.conditions.iter().any(|(kind, status)| {
                patterns
                    .iter()
                    .any(|p| p.kind == *kind && p.status.as_deref().unwrap_or("True") == *status)
            })
        } else {
            false
        };
        if matched {
            return action;
        }
    }
    Outcome::Count
}

/// The nightly Job as deployed: its spec, its rules and its batch container.
struct Night {
    job: Value,
    rules: Vec<Rule>,
}

impl Night {
    fn load() -> Night {
        let docs = docs("deploy/k8s/batch-cronjob.yaml");
        let cron = docs
            .iter()
            .find(|d| d["kind"] == "CronJob" && d["metadata"]["name"] == "iat2i-nightly")
            .expect("CronJob iat2i-nightly");
        let job = cron["spec"]["jobTemplate"]["spec"].clone();
        let rules = serde_yaml::from_value(job["podFailurePolicy"]["rules"].clone()).unwrap();
        Night { job, rules }
    }

    fn container(&self) -> &Value {
        let containers = self.job["template"]["spec"]["containers"].as_sequence();
        containers
            .unwrap()
            .iter()
            .find(|c| c["name"] == "batch")
            .expect("a container named batch")
    }

    fn arg(&self, flag: &str) -> &str {
        let args: Vec<&str> = self.container()["args"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let at = args.iter().position(|a| *a == flag).expect(flag);
        args[at + 1]
    }

    fn u64(&self, field: &str) -> u64 {
        self.job[field]
            .as_u64()
            .unwrap_or_else(|| panic!("{field}"))
    }

    fn outcome(&self, exit_code: i32, conditions: &[(&str, &str)]) -> Outcome {
        let pod = Pod {
            container: "batch",
            exit_code,
            conditions,
        };
        evaluate(&self.rules, &pod)
    }

    /// How many pods one shard starts in a night when each of them ends like this
    /// (u64::MAX: only activeDeadlineSeconds stops it).
    fn pods_per_shard(&self, exit_code: i32, conditions: &[(&str, &str)]) -> u64 {
        let limit = self.u64("backoffLimitPerIndex");
        let (mut pods, mut counted) = (0u64, 0u64);
        loop {
            pods += 1;
            match self.outcome(exit_code, conditions) {
                Outcome::Succeeded | Outcome::FailIndex | Outcome::FailJob => return pods,
                Outcome::Count => counted += 1,
                Outcome::Ignore if pods > 1000 => return u64::MAX,
                Outcome::Ignore => {}
            }
            if counted > limit {
                return pods;
            }
        }
    }
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)).unwrap()
}

fn docs(relative: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(&read(relative))
        .map(|d| Value::deserialize(d).unwrap())
        .collect()
}

/// 137 is no code of the batch's own: the kernel's SIGKILL (OOM killer, a kill after
/// terminationGracePeriodSeconds).
const KILLED: i32 = 137;

/// What each exit status must lead to. Exhaustive on purpose: a new variant does not
/// compile here until someone decides whether Kubernetes may start that shard again.
fn expected(status: ExitStatus) -> Outcome {
    match status {
        ExitStatus::AllDone => Outcome::Succeeded,
        // A crash outside the jobs: the journal makes a retry resume, not repeat.
        ExitStatus::Error | ExitStatus::Interrupted => Outcome::Count,
        // Final for the night: a retry would spend again (4, 3) or fail again (2, 5).
        ExitStatus::Usage
        | ExitStatus::SomeFailed
        | ExitStatus::Budget
        | ExitStatus::CircuitBreaker => Outcome::FailIndex,
    }
}

#[test]
fn every_exit_status_gets_the_action_that_spends_the_budget_once() {
    let night = Night::load();
    let retries = night.u64("backoffLimitPerIndex");
    for status in ExitStatus::ALL {
        let code = i32::from(status.code());
        let outcome = night.outcome(code, &[]);
        assert_eq!(outcome, expected(status), "exit {code} ({status:?})");
        let pods = night.pods_per_shard(code, &[]);
        let want = if outcome == Outcome::Count {
            retries + 1
        } else {
            1
        };
        assert_eq!(pods, want, "pods a shard starts when each exits {code}");
    }
    assert_eq!(night.outcome(KILLED, &[]), Outcome::Count, "OOM-killed");
    assert_eq!(night.pods_per_shard(KILLED, &[]), retries + 1);
    assert!(retries >= 1, "a crash is retried at least once");
}

#[test]
fn a_disruption_is_not_counted_but_a_final_exit_still_wins() {
    let night = Night::load();
    let drained = [("DisruptionTarget", "True")];
    // A node drain or a preemption: SIGTERM, the batch exits 130, and the retry is free.
    assert_eq!(night.outcome(130, &drained), Outcome::Ignore);
    assert_eq!(night.outcome(KILLED, &drained), Outcome::Ignore);
    assert_eq!(night.pods_per_shard(130, &drained), u64::MAX);
    // Only activeDeadlineSeconds bounds those; the Job must have it.
    assert!(night.job["activeDeadlineSeconds"].as_u64().is_some());
    // A shard that had already stopped on its budget stays stopped.
    for code in [2, 3, 4, 5] {
        assert_eq!(night.outcome(code, &drained), Outcome::FailIndex, "{code}");
    }
    // A condition that is not True, or another type, is no disruption.
    assert_eq!(
        night.outcome(130, &[("DisruptionTarget", "False")]),
        Outcome::Count
    );
    assert_eq!(night.outcome(130, &[("Ready", "True")]), Outcome::Count);
}

#[test]
fn the_evaluator_follows_the_job_controller() {
    // Shaped like the Kubernetes docs' example (job-pod-failure-policy-example.yaml),
    // with NotIn, an unknown action and another container added.
    let rules: Vec<Rule> = serde_yaml::from_str(
        "- action: Retry\n  onExitCodes: {operator: In, values: [9]}\n\
         - action: FailJob\n  onExitCodes: {containerName: main, operator: In, values: [42]}\n\
         - action: Ignore\n  onPodConditions: [{type: DisruptionTarget}]\n\
         - action: FailIndex\n  onExitCodes: {containerName: side, operator: NotIn, values: [1, 2]}\n",
    )
    .unwrap();
    let run = |container, exit_code, conditions: &[(&str, &str)]| {
        let pod = Pod {
            container,
            exit_code,
            conditions,
        };
        evaluate(&rules, &pod)
    };
    assert_eq!(run("main", 42, &[]), Outcome::FailJob);
    assert_eq!(
        run("main", 42, &[("DisruptionTarget", "True")]),
        Outcome::FailJob
    );
    assert_eq!(
        run("main", 1, &[("DisruptionTarget", "True")]),
        Outcome::Ignore
    );
    assert_eq!(
        run("main", 9, &[]),
        Outcome::Count,
        "unknown action skipped"
    );
    assert_eq!(run("side", 42, &[]), Outcome::FailIndex, "other container");
    assert_eq!(run("side", 2, &[]), Outcome::Count, "NotIn holds the value");
    assert_eq!(run("side", 0, &[]), Outcome::Succeeded);
}

#[test]
fn exit_status_all_lists_every_variant_once_in_code_order() {
    // Exhaustive: a new variant fails to compile here until it has its place in ALL.
    let position = |s: ExitStatus| match s {
        ExitStatus::AllDone => 0,
        ExitStatus::Error => 1,
        ExitStatus::Usage => 2,
        ExitStatus::SomeFailed => 3,
        ExitStatus::Budget => 4,
        ExitStatus::CircuitBreaker => 5,
        ExitStatus::Interrupted => 6,
    };
    for (i, status) in ExitStatus::ALL.iter().enumerate() {
        assert_eq!(position(*status), i, "{status:?}");
    }
    assert!(
        ExitStatus::ALL
            .windows(2)
            .all(|w| w[0].code() < w[1].code())
    );
}

/// The table in the manifest's comment: exit code -> the first action word on its line.
fn documented_in_manifest() -> Vec<(i32, Outcome)> {
    let text = read("deploy/k8s/batch-cronjob.yaml");
    let lines = text.lines().map(str::trim_start);
    let table = lines
        .skip_while(|l| !l.contains("Kubernetes does"))
        .skip(1)
        .map_while(|l| {
            let mut words = l.strip_prefix('#')?.split_whitespace();
            let code = words.next()?.parse().ok()?;
            let action = words.find_map(|w| Outcome::parse(w.trim_end_matches([':', ';', ','])));
            Some((
                code,
                action.unwrap_or_else(|| panic!("no action for {code}: {l}")),
            ))
        });
    table.collect()
}

/// The codes `batch --help` lists under "Exit codes:" (src/bin/iat2i/cmd/batch.rs).
fn documented_in_help() -> Vec<i32> {
    let text = read("src/bin/iat2i/cmd/batch.rs");
    let after = text
        .split_once("Exit codes:\n")
        .expect("an Exit codes: section")
        .1;
    after
        .lines()
        .map_while(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

#[test]
fn the_comments_and_the_help_document_every_exit_code_as_kubernetes_handles_it() {
    let night = Night::load();
    let table = documented_in_manifest();
    let mut codes: Vec<i32> = ExitStatus::ALL
        .iter()
        .map(|s| i32::from(s.code()))
        .collect();
    assert_eq!(
        documented_in_help(),
        codes,
        "batch --help lists ExitStatus::ALL"
    );
    codes.push(KILLED);
    let documented: Vec<i32> = table.iter().map(|(c, _)| *c).collect();
    assert_eq!(
        documented, codes,
        "the manifest's table lists every exit code"
    );
    for (code, said) in table {
        assert_eq!(
            night.outcome(code, &[]),
            said,
            "the comment for exit {code}"
        );
    }
}

fn seconds(text: &str) -> u64 {
    let (n, unit) = text.split_at(text.len() - 1);
    let n: u64 = n.parse().unwrap_or_else(|_| panic!("duration {text}"));
    n * match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => panic!("duration {text}"),
    }
}

#[test]
fn retries_cannot_outlast_the_batch_deadline() {
    let night = Night::load();
    let deadline = seconds(night.arg("--deadline"));
    let grace = seconds(night.arg("--grace"));
    let active = night.u64("activeDeadlineSeconds");
    // The first pods finish on their own (--deadline, then calls in flight: at most
    // 2.5 x the 120 s --timeout); the Job ends soon after, retries included.
    assert!(
        active >= deadline + 300,
        "{active} s leaves no room for calls in flight"
    );
    assert!(
        active <= deadline + 15 * 60,
        "{active} s lets retries run on"
    );
    let pod = &night.job["template"]["spec"];
    let term = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        Duration::from_secs(grace) < Duration::from_secs(term),
        "--grace {grace} s must end before the kubelet's SIGKILL at {term} s"
    );
}

#[test]
fn the_policy_is_one_the_api_server_accepts_and_the_shards_agree() {
    // What the JSON schemas of scripts/validate-k8s.sh cannot see: the API server's own
    // validation of podFailurePolicy (pkg/apis/batch/validation) and our shard count.
    let night = Night::load();
    let job = &night.job;
    assert!(night.rules.len() <= 20);
    assert_eq!(
        job["completionMode"], "Indexed",
        "backoffLimitPerIndex needs it"
    );
    assert_eq!(job["template"]["spec"]["restartPolicy"], "Never");
    assert_eq!(
        job["podReplacementPolicy"], "Failed",
        "never two pods of a shard"
    );
    for rule in &night.rules {
        assert!(Outcome::parse(&rule.action).is_some_and(|a| a != Outcome::Succeeded));
        assert!(rule.on_exit_codes.is_some() != rule.on_pod_conditions.is_some());
        if let Some(req) = &rule.on_exit_codes {
            assert!(["In", "NotIn"].contains(&req.operator.as_str()));
            assert!((1..=255).contains(&req.values.len()));
            assert!(
                req.values.windows(2).all(|w| w[0] < w[1]),
                "ordered, unique"
            );
            assert!(req.operator != "In" || !req.values.contains(&0));
            assert_eq!(req.container_name.as_deref(), Some("batch"));
        }
        for p in rule.on_pod_conditions.iter().flatten() {
            assert_eq!(
                p.status.as_deref(),
                Some("True"),
                "{} needs a status",
                p.kind
            );
        }
    }
    let completions = night.u64("completions");
    assert_eq!(night.u64("parallelism"), completions);
    assert!(night.u64("maxFailedIndexes") <= completions);
    let count = night.container()["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "IAT2I_SHARD_COUNT")
        .and_then(|e| e["value"].as_str()?.parse::<u64>().ok());
    assert_eq!(count, Some(completions), "IAT2I_SHARD_COUNT = completions");
}
