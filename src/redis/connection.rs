//! The connection the stores share: one server (the `redis` crate's `ConnectionManager`) or a
//! Redis Cluster (its cluster connection, which follows the slots and reconnects by itself).
//! Both are multiplexed and cheap to clone; neither needs a pool.

use ::redis::aio::{ConnectionLike, ConnectionManager};
use ::redis::cluster::ClusterClient;
use ::redis::cluster_async::ClusterConnection;
use ::redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

/// Where the commands go.
pub(crate) enum Connection {
    /// One server (or a proxy in front of several).
    Single(ConnectionManager),
    /// A cluster, connected on first use (so an application starts while it is down) and
    /// tried again on the next call when that fails.
    Cluster(Box<Cluster>),
}

/// A cluster's client and its connection once made.
pub(crate) struct Cluster {
    pub(crate) client: ClusterClient,
    pub(crate) connection: tokio::sync::OnceCell<ClusterConnection>,
}

/// A handle for one call.
#[derive(Clone)]
pub(crate) enum Handle {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Connection {
    /// A handle, connecting to the cluster first when it has not been yet.
    pub(crate) async fn handle(&self) -> RedisResult<Handle> {
        match self {
            Self::Single(manager) => Ok(Handle::Single(manager.clone())),
            Self::Cluster(cluster) => cluster
                .connection
                .get_or_try_init(|| cluster.client.get_async_connection())
                .await
                .map(|c| Handle::Cluster(c.clone())),
        }
    }
}

impl ConnectionLike for Handle {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}
