//! The broker URL of an AMQP source or sink, from its secret source (`url`, `url_env`,
//! `url_file`) and checked, without ever showing it (it may hold a password).

use super::secret::SecretSource;
use lapin::uri::AMQPUri;
use std::path::Path;
use std::str::FromStr;

/// The broker URI from its secret source: `amqp://` or `amqps://`. An error never shows the URL.
pub fn broker_uri(url: SecretSource<'_>, base: &Path) -> Result<AMQPUri, String> {
    let url = url.require(base)?;
    if !(url.expose().starts_with("amqp://") || url.expose().starts_with("amqps://")) {
        return Err("应以 amqp:// 或 amqps:// 开头 / must start with amqp:// or amqps://".into());
    }
    AMQPUri::from_str(url.expose()).map_err(|_| {
        "无效的 AMQP URL（不显示：可能含密码）/ invalid AMQP URL (not shown: it may hold a password)".into()
    })
}
