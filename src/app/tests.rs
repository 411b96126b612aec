use std::cell::RefCell;
use std::rc::Rc;

use http::header::{ALLOW, LOCATION};
use http::StatusCode;

use super::*;
use crate::context::Ctx;
use crate::error::Error;
use crate::response::IntoResponse;
use crate::service::Body;
use crate::testing::{block_on, request};

fn call<S: 'static>(app: &App<S>, raw: &str) -> Response {
    block_on(Service::call(app, request(raw)))
}

fn get<S: 'static>(app: &App<S>, path: &str) -> Response {
    call(app, &format!("GET {path} HTTP/1.1\r\n\r\n"))
}

fn text(res: &Response) -> String {
    match res.body() {
        Body::Full(b) => String::from_utf8_lossy(b).into_owned(),
        Body::Empty | Body::Chunks(_) => String::new(),
    }
}

/// A handler answering with its name and its params, to see which route matched.
fn named(name: &'static str) -> impl Handler<()> {
    move |_req: Request, cx: Ctx| {
        let params: Vec<String> = cx
            .params()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        async move { format!("{name} {}", params.join(",")) }
    }
}

#[test]
fn static_beats_param_beats_catch_all_whatever_the_order() {
    let app = App::new()
        .get("/files/*rest", named("all"))
        .get("/files/:name", named("param"))
        .get("/files/readme", named("static"))
        .finish()
        .unwrap();
    assert_eq!(text(&get(&app, "/files/readme")), "static ");
    assert_eq!(text(&get(&app, "/files/other")), "param name=other");
    assert_eq!(text(&get(&app, "/files/a/b")), "all rest=a/b");
}

#[test]
fn params_are_decoded_once() {
    let app = App::new()
        .get("/users/:id", named("user"))
        .finish()
        .unwrap();
    assert_eq!(text(&get(&app, "/users/caf%C3%A9")), "user id=café");
    // An encoded slash stays inside the one segment, decoded only in the parameter.
    assert_eq!(text(&get(&app, "/users/a%2Fb")), "user id=a/b");
}

#[test]
fn wrong_method_is_405_with_allow() {
    let app = App::new()
        .get("/x", named("get"))
        .post("/x", named("post"))
        .finish()
        .unwrap();
    let res = call(&app, "DELETE /x HTTP/1.1\r\n\r\n");
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers()[ALLOW], "GET, HEAD, POST, OPTIONS");
}

#[test]
fn head_uses_the_get_route() {
    let app = App::new().get("/x", named("get")).finish().unwrap();
    let res = call(&app, "HEAD /x HTTP/1.1\r\n\r\n");
    assert_eq!(res.status(), StatusCode::OK);
}

#[test]
fn options_answers_allow_with_204() {
    let app = App::new().put("/x", named("put")).finish().unwrap();
    let res = call(&app, "OPTIONS /x HTTP/1.1\r\n\r\n");
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(res.headers()[ALLOW], "PUT, OPTIONS");
}

#[test]
fn unknown_path_is_404() {
    let app = App::new().get("/x", named("x")).finish().unwrap();
    assert_eq!(get(&app, "/y").status(), StatusCode::NOT_FOUND);
}

#[test]
fn trailing_slash_redirects_to_the_registered_form_keeping_the_query() {
    let app = App::new()
        .get("/dir/", named("dir"))
        .get("/file", named("file"))
        .finish()
        .unwrap();
    let res = get(&app, "/dir?a=1");
    assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(res.headers()[LOCATION], "/dir/?a=1");
    let res = get(&app, "/file/");
    assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(res.headers()[LOCATION], "/file");
}

#[test]
fn trailing_slash_can_be_strict() {
    let app = App::new()
        .get("/file", named("file"))
        .trailing_slash(TrailingSlash::Strict)
        .finish()
        .unwrap();
    assert_eq!(get(&app, "/file/").status(), StatusCode::NOT_FOUND);
}

#[test]
fn a_redirect_never_points_at_another_host() {
    let app = App::new().get("//evil", named("x")).finish().unwrap();
    assert_eq!(get(&app, "//evil/").status(), StatusCode::NOT_FOUND);
}

#[test]
fn conflicts_and_duplicates_are_reported_by_finish_naming_both() {
    let err = App::new()
        .get("/users/:id", named("a"))
        .get("/users/:name/posts", named("b"))
        .get("/x", named("c"))
        .get("/x", named("d"))
        .finish()
        .err()
        .expect("conflicting routes");
    assert_eq!(err.0.len(), 2, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("/users/:id") && text.contains("/users/:name/posts"),
        "{text}"
    );
    assert!(text.contains("GET /x"), "{text}");
}

#[test]
fn the_same_path_takes_several_methods() {
    let app = App::new()
        .get("/users/:id", named("get"))
        .delete("/users/:id", named("delete"))
        .finish()
        .unwrap();
    assert_eq!(
        text(&call(&app, "DELETE /users/3 HTTP/1.1\r\n\r\n")),
        "delete id=3"
    );
}

struct Tag(&'static str, Rc<RefCell<Vec<&'static str>>>);
impl Middleware for Tag {
    async fn handle(&self, req: Request, next: Next<'_>) -> Response {
        self.1.borrow_mut().push(self.0);
        next.run(req).await
    }
}

#[test]
fn group_layers_run_only_for_the_group_after_app_layers() {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let app = App::new()
        .get("/open", named("open"))
        .group("/api", |g| {
            g.get("/items/:id", named("item"))
                .layer(Tag("group", seen.clone()))
                .group("/v2", |g| {
                    g.layer(Tag("inner", seen.clone())).get("/", named("v2"))
                })
        })
        .layer(Tag("app", seen.clone()))
        .finish()
        .unwrap();
    assert_eq!(text(&get(&app, "/api/items/7")), "item id=7");
    assert_eq!(*seen.borrow(), ["app", "group"]);
    seen.borrow_mut().clear();
    assert_eq!(text(&get(&app, "/api/v2")), "v2 ");
    assert_eq!(*seen.borrow(), ["app", "group", "inner"]);
    seen.borrow_mut().clear();
    assert_eq!(text(&get(&app, "/open")), "open ");
    assert_eq!(*seen.borrow(), ["app"]);
    seen.borrow_mut().clear();
    assert_eq!(get(&app, "/nowhere").status(), StatusCode::NOT_FOUND);
    assert_eq!(*seen.borrow(), ["app"], "app layers see 404s too");
}

#[test]
fn fallback_takes_unmatched_paths() {
    let app = App::new()
        .get("/x", named("x"))
        .fallback(|req: Request, _cx: Ctx| {
            let path = req.path().to_owned();
            async move { (StatusCode::IM_A_TEAPOT, path) }
        })
        .finish()
        .unwrap();
    let res = get(&app, "/else/where");
    assert_eq!(res.status(), StatusCode::IM_A_TEAPOT);
    assert_eq!(text(&res), "/else/where");
}

#[test]
fn handlers_see_shard_state() {
    #[derive(Default)]
    struct Hits(std::cell::Cell<u32>);
    let app = App::with_state(Hits::default())
        .get("/hit", |_req: Request, cx: Ctx<Hits>| {
            cx.state().0.set(cx.state().0.get() + 1);
            let n = cx.state().0.get();
            async move { n.to_string() }
        })
        .finish()
        .unwrap();
    get(&app, "/hit");
    assert_eq!(text(&get(&app, "/hit")), "2");
}

#[test]
fn a_panicking_handler_answers_500_and_the_app_carries_on() {
    let app = App::new()
        .get("/boom", |_req: Request, _cx: Ctx| async move {
            if true {
                panic!("boom");
            }
            ""
        })
        .get("/ok", named("ok"))
        .finish()
        .unwrap();
    assert_eq!(
        get(&app, "/boom").status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(get(&app, "/ok").status(), StatusCode::OK);
}

#[test]
fn handler_errors_become_their_status() {
    let app = App::new()
        .get("/users/:id", |_req: Request, cx: Ctx| {
            let id = cx.param("id").unwrap_or("").to_owned();
            async move {
                let id: u32 = id
                    .parse()
                    .map_err(|_| Error::bad_request("id must be a number"))?;
                Ok::<_, Error>(format!("user {id}"))
            }
        })
        .finish()
        .unwrap();
    let res = get(&app, "/users/x");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(text(&res), "id must be a number\n");
    assert_eq!(text(&get(&app, "/users/3")), "user 3");
}

#[test]
fn error_pages_render_json_or_html_by_accept() {
    let app = App::new()
        .get("/x", |_req: Request, _cx: Ctx| async move {
            Error::not_found("no <such> thing").into_response()
        })
        .layer(crate::middleware::RequestIds::new(0))
        .layer(crate::middleware::ErrorPages::new())
        .finish()
        .unwrap();
    let res = call(
        &app,
        "GET /x HTTP/1.1\r\nAccept: application/json\r\nX-Request-Id: r1\r\n\r\n",
    );
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let json: serde_json::Value = serde_json::from_str(&text(&res)).unwrap();
    assert_eq!(json["error"]["status"], 404);
    assert_eq!(json["error"]["message"], "no <such> thing");
    assert_eq!(json["request_id"], "r1");
    let res = call(&app, "GET /x HTTP/1.1\r\nAccept: text/html\r\n\r\n");
    assert!(text(&res).contains("no &lt;such&gt; thing"));
    assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8");
    let res = call(&app, "GET /x HTTP/1.1\r\n\r\n");
    assert_eq!(text(&res), "no <such> thing\n");
}

#[test]
fn a_handler_panicking_before_its_future_exists_is_a_500_too() {
    fn sync_panic(_req: Request, _cx: Ctx) -> std::future::Ready<&'static str> {
        panic!("sync part")
    }
    let app = App::new()
        .get("/x", sync_panic)
        .get("/ok", named("ok"))
        .finish()
        .unwrap();
    assert_eq!(get(&app, "/x").status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(get(&app, "/ok").status(), StatusCode::OK);
}

#[test]
fn group_layers_also_see_the_options_and_405_answers_of_their_routes() {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let app = App::new()
        .group("/api", |g| {
            g.layer(Tag("group", seen.clone()))
                .post("/items", named("post"))
        })
        .finish()
        .unwrap();
    assert_eq!(
        call(&app, "OPTIONS /api/items HTTP/1.1\r\n\r\n").status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(&app, "DELETE /api/items HTTP/1.1\r\n\r\n").status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(*seen.borrow(), ["group", "group"]);
}
