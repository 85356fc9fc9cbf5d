//! The Kubernetes manifests in deploy/k8s/: parsed, and checked for the fields that make a
//! sharded nightly batch work (an Indexed Job whose pods agree on the shard count, a shared
//! output volume, one shared Qdrant server, the API key from a Secret, graceful stops).

use serde_yaml::Value;

fn docs(file: &str) -> Vec<Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/k8s")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

fn kind<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn env<'a>(container: &'a Value, name: &str) -> &'a Value {
    container["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no env {name}"))
}

#[test]
fn the_cronjob_runs_an_indexed_job_whose_shards_share_qdrant_and_the_output_volume() {
    let batch = docs("batch-cronjob.yaml");
    let qdrant = docs("qdrant.yaml");
    let cron = kind(&batch, "CronJob", "iat2i-nightly");
    assert_eq!(cron["apiVersion"], "batch/v1");
    assert_eq!(
        cron["spec"]["concurrencyPolicy"], "Forbid",
        "no two nights at once"
    );
    let job = &cron["spec"]["jobTemplate"]["spec"];
    assert_eq!(job["completionMode"], "Indexed");
    let completions = job["completions"].as_u64().unwrap();
    assert_eq!(job["parallelism"].as_u64(), Some(completions));
    let pod = &job["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    assert!(pod["terminationGracePeriodSeconds"].as_u64().unwrap() >= 60);
    let c = &pod["containers"][0];
    let count: u64 = env(c, "IAT2I_SHARD_COUNT")["value"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(count, completions, "every pod knows the shard count");
    let args: Vec<&str> = c["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        args[..2],
        ["batch", "run"],
        "the image's entrypoint is iat2i"
    );
    assert!(
        !args.contains(&"--shard"),
        "the shard comes from JOB_COMPLETION_INDEX"
    );
    let out = args[args.iter().position(|a| *a == "--out").unwrap() + 1];
    let mounts = c["volumeMounts"].as_sequence().unwrap();
    let data = mounts
        .iter()
        .find(|m| out.starts_with(m["mountPath"].as_str().unwrap()))
        .expect("--out is on a mounted volume");
    let volume = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == data["name"])
        .unwrap();
    let claim = volume["persistentVolumeClaim"]["claimName"]
        .as_str()
        .unwrap();
    let pvc = kind(&batch, "PersistentVolumeClaim", claim);
    assert!(
        pvc["spec"]["accessModes"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|m| m == "ReadWriteMany"),
        "all shards write to one volume"
    );
    // The cache (the memory's image bytes, the CLIP model) survives the night on a claim:
    // an emptyDir would make every night's pods download every remembered image again.
    let cache = env(c, "IAT2I_CACHE_DIR")["value"].as_str().unwrap();
    let mount = mounts
        .iter()
        .find(|m| cache.starts_with(m["mountPath"].as_str().unwrap()))
        .expect("IAT2I_CACHE_DIR is on a mounted volume");
    let cache_volume = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    let cache_claim = cache_volume["persistentVolumeClaim"]["claimName"]
        .as_str()
        .expect("the cache is a PersistentVolumeClaim");
    kind(&batch, "PersistentVolumeClaim", cache_claim);
    let key = &env(c, "OPENAI_API_KEY")["valueFrom"]["secretKeyRef"];
    assert!(
        key["name"].is_string() && key["key"].is_string(),
        "the key comes from a Secret"
    );

    // QDRANT_URL points at the Service in qdrant.yaml, on its gRPC port.
    let url = env(c, "QDRANT_URL")["value"].as_str().unwrap();
    let rest = url.strip_prefix("http://").unwrap();
    let (host, port) = rest.split_once(':').unwrap();
    let service = kind(&qdrant, "Service", host);
    let port: u64 = port.parse().unwrap();
    assert!(
        service["spec"]["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|p| p["port"].as_u64() == Some(port) && p["name"] == "grpc")
    );
    let deployment = kind(&qdrant, "Deployment", host);
    assert_eq!(
        service["spec"]["selector"]["app"],
        deployment["spec"]["template"]["metadata"]["labels"]["app"]
    );

    // The summary merges the shards from the same volume.
    let summary = kind(&batch, "CronJob", "iat2i-nightly-summary");
    let sc = &summary["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(sc["args"][0], "batch");
    assert_eq!(sc["args"][1], "summary");
    assert_eq!(sc["args"][3].as_str(), Some(out));
}

/// The volume of `pod` that holds `path` in `container` (the mount whose path is its prefix).
fn volume_of<'a>(pod: &'a Value, container: &Value, path: &str) -> &'a Value {
    let mount = container["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        // By whole components: /etc/iat2i-keys/keys is not under /etc/iat2i.
        .find(|m| std::path::Path::new(path).starts_with(m["mountPath"].as_str().unwrap()))
        .unwrap_or_else(|| panic!("{path} is on no mounted volume"));
    pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap_or_else(|| panic!("no volume {:?}", mount["name"]))
}

#[test]
fn the_service_runs_serve_with_its_config_keys_state_and_the_batchs_qdrant_and_cache() {
    let serve = docs("serve.yaml");
    let batch = docs("batch-cronjob.yaml");
    let deployment = kind(&serve, "Deployment", "iat2i-serve");
    assert_eq!(deployment["apiVersion"], "apps/v1");
    assert!(deployment["spec"]["replicas"].as_u64().unwrap() >= 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert!(
        pod["terminationGracePeriodSeconds"].as_u64().unwrap() >= 120,
        "running requests finish after SIGTERM"
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let c = &pod["containers"][0];
    let args: Vec<&str> = c["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "serve", "the image's entrypoint is iat2i");
    let flag = |name: &str| -> String {
        let at = args
            .iter()
            .position(|a| *a == name)
            .unwrap_or_else(|| panic!("no {name}"));
        args[at + 1].to_string()
    };

    // It listens on the port the probes and the Service use.
    let port = &c["ports"][0];
    assert_eq!(port["name"], "http");
    let listen = flag("--listen");
    assert!(
        listen.ends_with(&format!(":{}", port["containerPort"].as_u64().unwrap())),
        "--listen {listen} is the containerPort"
    );
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "http");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "http");
    let service = kind(&serve, "Service", "iat2i-serve");
    assert_eq!(
        service["spec"]["selector"]["app"],
        deployment["spec"]["template"]["metadata"]["labels"]["app"]
    );
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");

    // --config is the ConfigMap in this file, whose key is the file's name.
    let config = flag("--config");
    let volume = volume_of(pod, c, &config);
    let map = kind(
        &serve,
        "ConfigMap",
        volume["configMap"]["name"].as_str().unwrap(),
    );
    let file = config.rsplit('/').next().unwrap();
    let toml = map["data"][file]
        .as_str()
        .expect("the ConfigMap has the file");
    assert!(toml.contains("[serve]"), "{toml}");
    // Its pipelines file is in the same ConfigMap (tests/serve_cli.rs loads both).
    let pipelines = toml
        .lines()
        .find_map(|l| l.trim().strip_prefix("pipelines = "))
        .map(|v| v.trim_matches('"'))
        .expect("the config names a pipelines file");
    assert_eq!(
        volume_of(pod, c, pipelines)["configMap"]["name"],
        map["metadata"]["name"]
    );
    let name = pipelines.rsplit('/').next().unwrap();
    assert!(
        map["data"][name]
            .as_str()
            .is_some_and(|t| t.contains("[[model]]")),
        "{map:?}"
    );

    // --keys-file is a key of a Secret (created by hand, like iat2i-openai).
    let keys = flag("--keys-file");
    let volume = volume_of(pod, c, &keys);
    assert!(volume["secret"]["secretName"].is_string());
    let key_file = keys.rsplit('/').next().unwrap();
    assert!(
        volume["secret"]["items"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|i| i["path"] == key_file),
        "the Secret's key is mounted as {keys}"
    );

    // --state-dir is one claim both replicas share (a report is found on either).
    let state = flag("--state-dir");
    let claim = volume_of(pod, c, &state)["persistentVolumeClaim"]["claimName"]
        .as_str()
        .expect("--state-dir is a PersistentVolumeClaim");
    let pvc = kind(&serve, "PersistentVolumeClaim", claim);
    assert!(
        pvc["spec"]["accessModes"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|m| m == "ReadWriteMany"),
        "both replicas write the state"
    );

    // The same reference memory as the nightly batch: its Qdrant server, its cache claim,
    // its OpenAI key.
    let shard = &kind(&batch, "CronJob", "iat2i-nightly")["spec"]["jobTemplate"]["spec"]["template"]
        ["spec"]["containers"][0];
    assert_eq!(
        env(c, "QDRANT_URL")["value"],
        env(shard, "QDRANT_URL")["value"]
    );
    assert_eq!(
        env(c, "OPENAI_API_KEY")["valueFrom"],
        env(shard, "OPENAI_API_KEY")["valueFrom"]
    );
    let cache = env(c, "IAT2I_CACHE_DIR")["value"].as_str().unwrap();
    let cache_claim = volume_of(pod, c, cache)["persistentVolumeClaim"]["claimName"]
        .as_str()
        .expect("the cache is a PersistentVolumeClaim");
    kind(&batch, "PersistentVolumeClaim", cache_claim);
}
