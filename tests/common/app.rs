//! An in-process server: the real shard runtime and connection loops, serving an app the test
//! builds, on an ephemeral port. For behaviour the binary's flags cannot reach (custom routes, a
//! panicking handler, middleware settings). Clients stay independent (reqwest, raw sockets).

use std::net::SocketAddr;
use std::time::Duration;

use percore::config::ServeConfig;
use percore::serve::{start_app, AppFactory, RunningServer};

/// A running in-process server; shut down and joined when dropped.
pub struct AppServer {
    pub addr: SocketAddr,
    server: Option<RunningServer>,
}

impl AppServer {
    /// Serves `factory`'s app on 127.0.0.1:0 with `shards` unpinned shards.
    pub fn start<S: 'static>(shards: usize, factory: impl AppFactory<S>) -> AppServer {
        Self::start_with(shards, |_| {}, factory)
    }

    /// As [`start`](Self::start), after `adjust` has changed the configuration.
    pub fn start_with<S: 'static>(
        shards: usize,
        adjust: impl FnOnce(&mut ServeConfig),
        factory: impl AppFactory<S>,
    ) -> AppServer {
        let mut config = ServeConfig::new(vec!["127.0.0.1:0".parse().unwrap()]);
        config.runtime.shards = shards;
        config.runtime.pin = false;
        config.runtime.grace = Duration::from_secs(2);
        adjust(&mut config);
        let server = start_app(config, factory).expect("start the app");
        let addr = server.local_addrs()[0];
        AppServer {
            addr,
            server: Some(server),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops the server and reports how it ended.
    pub fn stop(mut self) -> Result<(), percore::serve::ServeError> {
        let server = self.server.take().expect("running");
        server.shutdown();
        server.join()
    }
}

impl Drop for AppServer {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown();
            let _ = server.join();
        }
    }
}
