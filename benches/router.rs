//! Router lookup: percore's `Tree` against matchit, on the same table of 100 routes.
//!
//! The table mixes a GitHub-like website and API: 66 static routes, 31 with parameters (up to
//! four) and 3 catch-alls. The root-level `/:user` and `/:user/:repo` sit beside every static
//! first segment, so every lookup passes a node where a failed static branch would fall back to a
//! parameter: matchit records a backtracking point there (its `skipped` Vec, allocated per
//! lookup), percore recurses. Without those two routes the ratio was 0.7 instead of 0.5.
//!
//! Each route is registered in both routers (converted to matchit's `{name}` / `{*name}` syntax)
//! and looked up with one concrete path. Before timing, the bench checks that both routers pick the same route, with the same
//! parameters, for every path, and that the miss paths miss in both.
//!
//! - `percore` / `matchit`: one iteration = one lookup of every route's path (100 lookups).
//! - `percore-miss` / `matchit-miss`: one iteration = the six miss paths.
//!
//! Run: `cargo bench --bench router -- --warm-up-time 1 --measurement-time 3`

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use percore::router::Tree;

const ROUTES: &[&str] = &[
    // Website, static.
    "/",
    "/about",
    "/pricing",
    "/login",
    "/logout",
    "/signup",
    "/features",
    "/features/actions",
    "/features/packages",
    "/features/security",
    "/explore",
    "/trending",
    "/marketplace",
    "/sponsors",
    "/topics",
    "/collections",
    "/settings/profile",
    "/settings/account",
    "/settings/emails",
    "/settings/keys",
    "/settings/notifications",
    "/settings/billing",
    "/settings/security",
    "/healthz",
    "/robots.txt",
    "/favicon.ico",
    // API, static.
    "/user",
    "/user/keys",
    "/user/emails",
    "/user/followers",
    "/user/following",
    "/user/repos",
    "/user/orgs",
    "/user/starred",
    "/user/subscriptions",
    "/user/issues",
    "/users",
    "/gists",
    "/gists/public",
    "/gists/starred",
    "/issues",
    "/notifications",
    "/emojis",
    "/events",
    "/feeds",
    "/meta",
    "/rate_limit",
    "/organizations",
    "/repositories",
    "/search/repositories",
    "/search/code",
    "/search/issues",
    "/search/users",
    "/authorizations",
    "/applications/grants",
    "/markdown",
    "/markdown/raw",
    "/licenses",
    "/gitignore/templates",
    "/zen",
    "/octocat",
    "/versions",
    "/installation/repositories",
    "/app",
    "/app/installations",
    "/marketplace_listing/plans",
    // With parameters.
    "/:user",
    "/:user/:repo",
    "/users/:user",
    "/users/:user/followers",
    "/users/:user/following/:target",
    "/users/:user/repos",
    "/users/:user/starred",
    "/user/keys/:id",
    "/user/starred/:owner/:repo",
    "/gists/:id",
    "/gists/:id/star",
    "/gists/:id/comments/:comment",
    "/orgs/:org",
    "/orgs/:org/members/:user",
    "/orgs/:org/teams",
    "/orgs/:org/repos",
    "/teams/:team/repos/:owner/:repo",
    "/repos/:owner/:repo",
    "/repos/:owner/:repo/issues",
    "/repos/:owner/:repo/issues/:number",
    "/repos/:owner/:repo/issues/:number/comments",
    "/repos/:owner/:repo/issues/comments/:id",
    "/repos/:owner/:repo/pulls",
    "/repos/:owner/:repo/pulls/:number",
    "/repos/:owner/:repo/pulls/:number/files",
    "/repos/:owner/:repo/commits/:sha",
    "/repos/:owner/:repo/branches/:branch",
    "/repos/:owner/:repo/releases/latest",
    "/repos/:owner/:repo/releases/:id",
    "/repos/:owner/:repo/stats/contributors",
    "/legacy/issues/search/:owner/:repository/:state/:keyword",
    // Catch-alls.
    "/repos/:owner/:repo/contents/*path",
    "/static/*path",
    "/assets/*file",
];

/// Paths that match no route, in either router.
const MISSES: &[&str] = &[
    "/repos/rust-lang/rust/issues/1234/labels",
    "/users/torvalds/repos/extra",
    "/torvalds/linux/issues",
    "/gists/42/comments",
    "/legacy/issues/search/a/b/c",
    "",
];

/// The route in matchit's syntax.
fn to_matchit(pattern: &str) -> String {
    let segments = pattern.split('/').map(|segment| {
        if let Some(name) = segment.strip_prefix(':') {
            format!("{{{name}}}")
        } else if let Some(name) = segment.strip_prefix('*') {
            format!("{{*{name}}}")
        } else {
            segment.to_owned()
        }
    });
    segments.collect::<Vec<_>>().join("/")
}

/// A request path for the route: each parameter gets a plausible value.
fn concrete(pattern: &str) -> String {
    let segments = pattern.split('/').map(|segment| {
        let value = match segment {
            ":user" | ":target" => "torvalds",
            ":owner" => "rust-lang",
            ":repo" | ":repository" => "rust",
            ":number" | ":comment" => "1234",
            ":id" | ":org" | ":team" => "42",
            ":sha" => "6dcb09b5b57875f334f61aebed695e2e4193db5e",
            ":branch" => "main",
            ":state" => "open",
            ":keyword" => "borrowck",
            "*path" => "src/lib.rs",
            "*file" => "img/logo.png",
            other if other.starts_with([':', '*']) => panic!("no value for {other}"),
            literal => literal,
        };
        value.to_owned()
    });
    segments.collect::<Vec<_>>().join("/")
}

fn lookups(c: &mut Criterion) {
    let mut tree = Tree::new();
    let mut matchit = matchit::Router::new();
    for (i, pattern) in ROUTES.iter().enumerate() {
        tree.insert(pattern, i).expect("percore accepts the table");
        matchit
            .insert(to_matchit(pattern), i)
            .expect("matchit accepts the table");
    }
    let hits: Vec<String> = ROUTES.iter().map(|pattern| concrete(pattern)).collect();

    for (i, path) in hits.iter().enumerate() {
        let ours = tree.at(path).expect("percore matches every route's path");
        let theirs = matchit
            .at(path)
            .expect("matchit matches every route's path");
        assert_eq!(*ours.value, i, "percore picked {} for {path}", ours.pattern);
        assert_eq!(*theirs.value, i, "matchit picked another route for {path}");
        let ours: Vec<_> = ours.params.iter().collect();
        let theirs: Vec<_> = theirs.params.iter().collect();
        assert_eq!(ours, theirs, "parameters of {path}");
    }
    for path in MISSES {
        assert!(tree.at(path).is_none(), "percore matched {path}");
        assert!(matchit.at(path).is_err(), "matchit matched {path}");
    }

    let mut group = c.benchmark_group("router");
    group.bench_function("percore", |b| {
        b.iter(|| {
            for path in &hits {
                black_box(tree.at(black_box(path)));
            }
        })
    });
    group.bench_function("matchit", |b| {
        b.iter(|| {
            for path in &hits {
                let _ = black_box(matchit.at(black_box(path)));
            }
        })
    });
    group.bench_function("percore-miss", |b| {
        b.iter(|| {
            for path in MISSES {
                black_box(tree.at(black_box(path)));
            }
        })
    });
    group.bench_function("matchit-miss", |b| {
        b.iter(|| {
            for path in MISSES {
                let _ = black_box(matchit.at(black_box(path)));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, lookups);
criterion_main!(benches);
