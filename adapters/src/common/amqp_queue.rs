//! Queues an AMQP source or sink declares: their type (`queue_type = "classic" | "quorum"`),
//! and RabbitMQ's PRECONDITION_FAILED replies read back into what differs.
//!
//! A classic queue is declared without `x-queue-type` (as before queue types existed, so that
//! queues declared by earlier versions stay equivalent); a quorum queue with
//! `x-queue-type = quorum`, durable. RabbitMQ compares `x-queue-type` before any other argument,
//! and a queue's type cannot change: the reply then says which type the queue has.

use super::settings::SettingsProblem;
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable};

/// The type of a queue the gateway declares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QueueType {
    /// A classic queue (on one node, or mirrored by a policy on RabbitMQ 3).
    #[default]
    Classic,
    /// A quorum queue: replicated on a majority of the cluster's nodes (Raft), durable.
    Quorum,
}

impl QueueType {
    /// From the `queue_type` setting.
    pub fn parse(text: &str) -> Option<QueueType> {
        match text {
            "classic" => Some(QueueType::Classic),
            "quorum" => Some(QueueType::Quorum),
            _ => None,
        }
    }

    /// The setting's value.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueType::Classic => "classic",
            QueueType::Quorum => "quorum",
        }
    }

    /// Add the queue's type to declaration `arguments` (nothing for a classic queue).
    pub fn declare_into(self, arguments: &mut FieldTable) {
        if self == QueueType::Quorum {
            arguments.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
        }
    }

    /// The `x-queue-type` argument as the declaration reads in words (empty for classic).
    pub fn declared_words(self) -> &'static str {
        match self {
            QueueType::Classic => "",
            QueueType::Quorum => ", x-queue-type = 'quorum'",
        }
    }
}

/// Check a `queue_type` setting (key `queue_type`).
pub fn check_queue_type(text: &str) -> Option<SettingsProblem> {
    QueueType::parse(text).is_none().then(|| {
        SettingsProblem::new(
            "queue_type",
            format!(
                "未知队列类型 queue_type = {text:?}：应为 classic 或 quorum / unknown queue type queue_type = {text:?}: classic or quorum"
            ),
        )
    })
}

/// A queue type as the broker names it (`x-queue-type`; absent: classic), in (Chinese, English).
pub fn type_words(x_queue_type: Option<&str>) -> (String, String) {
    match x_queue_type {
        None | Some("classic") => ("经典队列（classic）".into(), "a classic queue".into()),
        Some("quorum") => ("仲裁队列（quorum）".into(), "a quorum queue".into()),
        Some(other) => (format!("{other} 类型的队列"), format!("a queue of type {other}")),
    }
}

/// The soft error the broker answered with, if that is what `e` is.
pub fn soft_error(e: &lapin::Error) -> Option<(AMQPSoftError, String)> {
    match e.kind() {
        lapin::ErrorKind::ProtocolError(amqp) => match amqp.kind() {
            AMQPErrorKind::Soft(soft) => Some((soft.clone(), amqp.get_message().as_str().to_string())),
            AMQPErrorKind::Hard(_) => None,
        },
        _ => None,
    }
}

/// RabbitMQ's account of one property that differs: `inequivalent arg 'ARG' for queue 'Q' in
/// vhost 'V': received VALUE but current is VALUE`, a value being `none`, `'text'` or `the
/// value 'text' of type 'longstr'`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inequivalent {
    /// The argument or property, e.g. `x-queue-type`, `durable`.
    pub arg: String,
    /// What the gateway sent (`None`: it sent no such argument).
    pub received: Option<String>,
    /// What the broker holds (`None`: absent).
    pub current: Option<String>,
}

/// Read a PRECONDITION_FAILED reply; `None` when it is not about an inequivalent argument.
pub fn parse_inequivalent(text: &str) -> Option<Inequivalent> {
    let rest = text.split_once("inequivalent arg '")?.1;
    let (arg, rest) = rest.split_once('\'')?;
    let (_, rest) = rest.split_once(": received ")?;
    let (received, current) = rest.split_once(" but current is ")?;
    Some(Inequivalent {
        arg: arg.to_string(),
        received: broker_value(received),
        current: broker_value(current),
    })
}

fn broker_value(text: &str) -> Option<String> {
    let text = text.trim();
    if text == "none" {
        return None;
    }
    let quoted = text.strip_prefix("the value ").unwrap_or(text);
    let inner = match quoted.strip_prefix('\'') {
        Some(inner) => inner,
        None => return Some(text.to_string()),
    };
    let end = inner
        .rfind("' of type '")
        .or_else(|| inner.rfind('\''))
        .unwrap_or(inner.len());
    Some(inner[..end].to_string())
}

/// What to say when the broker refuses a queue because its type differs (`diff.arg` is
/// `x-queue-type`): `queue` exists in `vhost` as one type, the gateway would declare the other
/// (`setting`: where the type is set, e.g. `queue_type = "quorum"`). Returns (Chinese, English)
/// halves of the account, before any advice.
pub fn type_mismatch(queue: &str, vhost: &str, diff: &Inequivalent) -> (String, String) {
    let (held_zh, held_en) = type_words(diff.current.as_deref());
    let (wanted_zh, wanted_en) = type_words(diff.received.as_deref());
    let setting = match diff.received.as_deref() {
        Some("quorum") => "queue_type = \"quorum\"",
        _ => "queue_type = \"classic\"",
    };
    (
        format!("队列 {queue} 已作为{held_zh}存在于 vhost {vhost}；网关会将其声明为{wanted_zh}（{setting}），代理拒绝（PRECONDITION_FAILED）：队列类型不能更改"),
        format!("queue {queue} exists in vhost {vhost} as {held_en}; the gateway would declare it as {wanted_en} ({setting}), which the broker refuses (PRECONDITION_FAILED): a queue's type cannot be changed"),
    )
}

/// The `queue_type` value that matches a queue the broker holds as `x_queue_type`.
pub fn setting_for(x_queue_type: Option<&str>) -> &str {
    match x_queue_type {
        None => "classic",
        Some(t) => t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_adds_its_type_and_classic_declares_as_before() {
        let mut quorum = FieldTable::default();
        QueueType::Quorum.declare_into(&mut quorum);
        assert_eq!(
            quorum.inner().get("x-queue-type"),
            Some(&AMQPValue::LongString("quorum".into()))
        );
        let mut classic = FieldTable::default();
        QueueType::Classic.declare_into(&mut classic);
        assert!(
            classic.inner().is_empty(),
            "a classic queue is declared without x-queue-type"
        );
        let problem = check_queue_type("stream").unwrap();
        assert_eq!(problem.key, "queue_type");
        assert!(
            problem.message.contains("queue_type = \"stream\": classic or quorum"),
            "{}",
            problem.message
        );
        assert!(check_queue_type("quorum").is_none());
    }

    #[test]
    fn the_brokers_inequivalent_arg_replies_are_read() {
        let absent = parse_inequivalent("PRECONDITION_FAILED - inequivalent arg 'x-dead-letter-exchange' for queue 'dept.cases' in vhost 'v': received the value 'ganzhi.dead-letter' of type 'longstr' but current is none").unwrap();
        assert_eq!(
            absent,
            Inequivalent {
                arg: "x-dead-letter-exchange".into(),
                received: Some("ganzhi.dead-letter".into()),
                current: None
            }
        );
        let durable = parse_inequivalent("PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'q' in vhost '/': received 'true' but current is 'false'").unwrap();
        assert_eq!(
            (durable.received.as_deref(), durable.current.as_deref()),
            (Some("true"), Some("false"))
        );
        let extra = parse_inequivalent("PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue 'q.dead' in vhost '/': received none but current is the value '60000' of type 'signedint'").unwrap();
        assert_eq!((extra.received, extra.current.as_deref()), (None, Some("60000")));
        assert_eq!(parse_inequivalent("PRECONDITION_FAILED - something else"), None);
    }

    /// The replies are RabbitMQ 3.10's, as seen declaring one type over the other.
    #[test]
    fn a_type_mismatch_names_both_types_in_both_languages() {
        let to_quorum = parse_inequivalent("PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'cq' in vhost 'v': received the value 'quorum' of type 'longstr' but current is none").unwrap();
        let (zh, en) = type_mismatch("cq", "v", &to_quorum);
        assert_eq!(en, "queue cq exists in vhost v as a classic queue; the gateway would declare it as a quorum queue (queue_type = \"quorum\"), which the broker refuses (PRECONDITION_FAILED): a queue's type cannot be changed");
        assert!(
            zh.contains("经典队列（classic）") && zh.contains("仲裁队列（quorum）"),
            "{zh}"
        );
        let to_classic = parse_inequivalent("PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'qq' in vhost 'v': received none but current is the value 'quorum' of type 'longstr'").unwrap();
        let (_, en) = type_mismatch("qq", "v", &to_classic);
        assert!(
            en.contains(
                "as a quorum queue; the gateway would declare it as a classic queue (queue_type = \"classic\")"
            ),
            "{en}"
        );
        assert_eq!(setting_for(to_classic.current.as_deref()), "quorum");
        assert_eq!(setting_for(to_quorum.current.as_deref()), "classic");
    }
}
