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
