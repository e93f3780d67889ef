//! File descriptors at start-up: girok raises its soft limit to the hard one, keeps a reserve
//! for storage (fjall's open table files, journals) and everything else the process opens,
//! and lowers `server.max_connections` to what is left, so that client sockets can never
//! take the descriptors the log needs (an exhausted limit used to fail writes for good).

use crate::config::Config;

/// Descriptors kept for what is not a table file or a client connection: journals,
/// listeners, the runtime's epoll and event descriptors, the search index, the analytics
/// client, the operators' listener's connections and refusals in progress.
const OTHER_RESERVE: u64 = 128 + girok_frontends::http::EXTRA_SOCKETS as u64;
/// Fewer usable connections than this and girok refuses to start.
const MIN_CONNECTIONS: u64 = 16;

/// Raises the descriptor limit and fits `server.max_connections` under it.
pub fn fit(config: &mut Config) -> anyhow::Result<()> {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(error) => match rlimit::getrlimit(rlimit::Resource::NOFILE) {
            // Not raised (say, a hard limit the kernel does not allow): fit under the soft one.
            Ok((soft, _)) => {
                tracing::warn!(%error, soft, "cannot raise the file descriptor limit");
                soft
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read the file descriptor limit");
                return Ok(());
            }
        },
    };
    let reserve = config.storage.max_open_files as u64 + OTHER_RESERVE;
    let usable = limit.saturating_sub(reserve);
    if usable < MIN_CONNECTIONS {
        anyhow::bail!(
            "the file descriptor limit ({limit}) leaves {usable} for connections after \
             {reserve} for storage (storage.max_open_files + {OTHER_RESERVE}); raise it \
             (ulimit -n) or lower storage.max_open_files"
        );
    }
    let configured = config.server.max_connections as u64;
    if configured > usable {
        tracing::warn!(
            configured,
            limit,
            reserve,
            using = usable,
            "server.max_connections is more than the file descriptor limit allows; lowered"
        );
        config.server.max_connections = usable as usize;
    }
    tracing::info!(
        limit,
        max_connections = config.server.max_connections,
        "file descriptors"
    );
    Ok(())
}
