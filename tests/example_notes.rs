//! The `notes` example (examples/notes.rs), served by the real runtime on 2 shards and driven
//! with reqwest: the README points users at it, so it must keep working.

mod common;

#[allow(dead_code)]
#[path = "../examples/notes.rs"]
mod notes;

use std::time::Duration;

use common::app::AppServer;

fn fresh_client() -> reqwest::blocking::Client {
    // A new client per request: a new connection, so requests land on both shards.
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

#[test]
fn notes_live_on_their_owner_shard_and_writes_need_the_key() {
    let server = AppServer::start(2, notes::app);
    let names: Vec<String> = (0..12).map(|i| format!("note-{i}")).collect();
    for name in &names {
        let res = fresh_client()
            .put(server.url(&format!("/api/notes/{name}")))
            .header("content-type", "application/json")
            .body(format!(r#"{{"text":"text of {name}"}}"#))
            .send()
            .unwrap();
        assert_eq!(res.status(), 401, "writes without the key are refused");
        let res = fresh_client()
            .put(server.url(&format!("/api/notes/{name}")))
            .header("authorization", "Bearer secret")
            .header("content-type", "application/json")
            .body(format!(r#"{{"text":"text of {name}"}}"#))
            .send()
            .unwrap();
        assert_eq!(res.status(), 201);
    }
    // Every note is found, whichever shard the reading connection lands on.
    for name in &names {
        for _ in 0..3 {
            let res = fresh_client()
                .get(server.url(&format!("/api/notes/{name}")))
                .send()
                .unwrap();
            assert_eq!(res.status(), 200);
            let note: serde_json::Value = serde_json::from_str(&res.text().unwrap()).unwrap();
            assert_eq!(note["text"], format!("text of {name}"));
        }
    }
    let res = fresh_client()
        .put(server.url("/api/notes/empty"))
        .header("authorization", "Bearer secret")
        .header("content-type", "application/json")
        .body(r#"{"text":"  "}"#)
        .send()
        .unwrap();
    assert_eq!(res.status(), 422);
    let res = fresh_client()
        .get(server.url("/api/notes/missing"))
        .header("accept", "application/json")
        .send()
        .unwrap();
    assert_eq!(res.status(), 404);
    let body: serde_json::Value = serde_json::from_str(&res.text().unwrap()).unwrap();
    assert_eq!(body["error"]["message"], "no such note");

    let stats = fresh_client().get(server.url("/stats")).send().unwrap();
    let stats: serde_json::Value = serde_json::from_str(&stats.text().unwrap()).unwrap();
    let per_shard: Vec<u64> = stats["notes_per_shard"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    assert_eq!(per_shard.iter().sum::<u64>(), 12);
    assert!(
        per_shard.iter().all(|&n| n > 0),
        "both shards own notes: {per_shard:?}"
    );
}
