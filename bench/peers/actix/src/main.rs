//! `actix` benchmark peer of percore (adapted from shared/anchors/peers/actix): actix-web 4 with workers(1).
//! (actix always has its own accept thread besides the single worker; both are
//! confined to the CPU given by taskset.)
//! GET /plaintext -> "Hello, World!" (text/plain); GET /json -> {"message":"Hello, World!"}.
//! Usage: percore-bench-actix [PORT]  (or PORT env var; default 8093)

use actix_web::{web, App, HttpResponse, HttpServer};
use serde::Serialize;

#[derive(Serialize)]
struct Message {
    message: &'static str,
}

async fn plaintext() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain")
        .body("Hello, World!")
}

async fn json() -> HttpResponse {
    HttpResponse::Ok().json(Message {
        message: "Hello, World!",
    })
}

fn port() -> u16 {
    std::env::args()
        .nth(1)
        .or_else(|| std::env::var("PORT").ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(8093)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let port = port();
    eprintln!("actix-web (workers=1) listening on 127.0.0.1:{port}");
    HttpServer::new(|| {
        App::new()
            .route("/plaintext", web::get().to(plaintext))
            .route("/json", web::get().to(json))
    })
    .workers(1)
    .backlog(4096)
    .bind(("127.0.0.1", port))?
    .run()
    .await
}
