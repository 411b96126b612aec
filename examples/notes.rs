//! A small app on percore's library: notes kept in memory, each on the shard that owns its name.
//!
//! ```text
//! cargo run --release --example notes
//! curl -X PUT -H 'Authorization: Bearer secret' -H 'Content-Type: application/json' \
//!      -d '{"text":"buy milk"}' http://127.0.0.1:8080/api/notes/groceries
//! curl http://127.0.0.1:8080/api/notes/groceries
//! curl http://127.0.0.1:8080/stats
//! ```
//!
//! What it shows: routes with parameters, a group (`/api`) with its own middleware (a bearer
//! key for writes), per-shard state, and calls to another shard over the mesh: a note lives on
//! the shard its name hashes to, whichever shard the request landed on.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use http::{Method, StatusCode};
use percore::config::ServeConfig;
use percore::middleware::{ErrorPages, RequestIds};
use percore::{App, Ctx, Error, Json, Middleware, Next, Request, Response, ShardHandle};
use serde::{Deserialize, Serialize};

/// One shard's share of the notes, and how many requests this shard has served.
#[derive(Default)]
pub struct Notes {
    by_name: RefCell<HashMap<String, Note>>,
    served: Cell<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Note {
    text: String,
}

impl percore::Validate for Note {
    fn validate(&self) -> Result<(), std::borrow::Cow<'static, str>> {
        if self.text.trim().is_empty() {
            return Err("text must not be empty".into());
        }
        Ok(())
    }
}

/// The shard that keeps the note called `name`.
fn owner(name: &str, shards: usize) -> usize {
    let mut h = DefaultHasher::new();
    name.hash(&mut h);
    (h.finish() % shards as u64) as usize
}

async fn get_note(_req: Request, cx: Ctx<Notes>) -> Result<Json<Note>, Error> {
    cx.state().served.set(cx.state().served.get() + 1);
    let name = cx.param("name").unwrap_or_default().to_owned();
    let at = owner(&name, cx.shard().count());
    let found = cx
        .shard()
        .call(at, move |notes: &Notes| {
            notes.by_name.borrow().get(&name).cloned()
        })
        .await?;
    found
        .map(Json)
        .ok_or_else(|| Error::not_found("no such note"))
}

async fn put_note(req: Request, cx: Ctx<Notes>) -> Result<StatusCode, Error> {
    cx.state().served.set(cx.state().served.get() + 1);
    let note: Note = req.json_validated()?;
    let name = cx.param("name").unwrap_or_default().to_owned();
    let at = owner(&name, cx.shard().count());
    let existed = cx
        .shard()
        .call(at, move |notes: &Notes| {
            notes.by_name.borrow_mut().insert(name, note).is_some()
        })
        .await?;
    Ok(if existed {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::CREATED
    })
}

#[derive(Serialize)]
struct Stats {
    served_per_shard: Vec<u64>,
    notes_per_shard: Vec<usize>,
}

/// Asks every shard for its counters.
async fn stats(_req: Request, cx: Ctx<Notes>) -> Result<Json<Stats>, Error> {
    let mut stats = Stats {
        served_per_shard: Vec::new(),
        notes_per_shard: Vec::new(),
    };
    for shard in 0..cx.shard().count() {
        let (served, notes) = cx
            .shard()
            .call(shard, |n: &Notes| {
                (n.served.get(), n.by_name.borrow().len())
            })
            .await?;
        stats.served_per_shard.push(served);
        stats.notes_per_shard.push(notes);
    }
    Ok(Json(stats))
}

/// Writes need `Authorization: Bearer <key>`; reads are open.
struct WriteKey {
    expected: String,
}

impl Middleware for WriteKey {
    async fn handle(&self, req: Request, next: Next<'_>) -> Response {
        let is_write = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        let authorised = req
            .headers()
            .get_str("authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|key| key == self.expected);
        if is_write && !authorised {
            return percore::IntoResponse::into_response(Error::unauthorized(
                "writes need Authorization: Bearer <key>",
            ));
        }
        next.run(req).await
    }
}

/// Built once on every shard.
pub fn app(shard: &ShardHandle) -> App<Notes> {
    App::with_state(Notes::default())
        .get("/stats", stats)
        .group("/api", |api| {
            api.layer(WriteKey {
                expected: "secret".to_owned(),
            })
            .get("/notes/:name", get_note)
            .put("/notes/:name", put_note)
        })
        // Two hooks as one layer: one future per request for both.
        .layer((RequestIds::new(shard.id()), ErrorPages::new()))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .init();
    let config = ServeConfig::new(vec!["127.0.0.1:8080".parse()?]);
    percore::serve::run_app(config, app)?;
    Ok(())
}
