//! The shape of the object a list of fields writes, worked out at load time.
//!
//! Targets never lie inside one another (the compiler rejects `agency` next to `agency.name`),
//! so the object a field list builds is a fixed tree whose leaves are the distinct targets.
//! Applying a mapping writes each value into the slot of its target (a later field with the
//! same target replaces an earlier one, as an insert would), and [`Layout::build`] then makes
//! the nested objects in one pass over the keys, already sorted: no map look-ups per field,
//! no intermediate objects created and searched again, no key re-sorting.

use super::path::TargetPath;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// One key of an object in the layout.
#[derive(Debug)]
enum Node {
    /// A target: the value of slot `slot`, when one was written.
    Leaf { key: Box<str>, slot: usize },
    /// An object holding deeper targets; present when any of them was written.
    Object { key: Box<str>, children: Vec<Node> },
}

/// The slots of a field list and the tree that assembles them.
#[derive(Debug)]
pub(crate) struct Layout {
    /// Slot of each field, in field order.
    slot_of: Vec<usize>,
    /// Number of slots (distinct targets plus extra root keys).
    slots: usize,
    /// Number of distinct targets: the extra keys' slots follow.
    targets: usize,
    /// Keys of the top object, sorted as `serde_json::Map` sorts them.
    nodes: Vec<Node>,
    /// The object with every key present (targets `null`): cloning it copies keys and nodes
    /// without comparing or shifting anything, which inserting key by key does.
    template: Map<String, Value>,
}

#[derive(Default)]
struct Builder {
    slot: Option<usize>,
    children: BTreeMap<Box<str>, Builder>,
}

impl Builder {
    fn into_nodes(self) -> Vec<Node> {
        self.children
            .into_iter()
            .map(|(key, b)| match b.slot {
                Some(slot) if b.children.is_empty() => Node::Leaf { key, slot },
                _ => Node::Object {
                    key,
                    children: b.into_nodes(),
                },
            })
            .collect()
    }
}

impl Layout {
    /// The layout of fields with these targets (in field order), plus `extra` single-key
    /// targets written by the engine itself (the root's `case_type`); the slot of `extra[i]`
    /// is [`Layout::extra_slot`]`(i)`.
    pub fn new<'t>(targets: impl IntoIterator<Item = &'t TargetPath>, extra: &[&str]) -> Layout {
        let mut root = Builder::default();
        let mut slot_of = Vec::new();
        let mut distinct: Vec<&'t TargetPath> = Vec::new();
        for target in targets {
            let slot = match distinct.iter().position(|t| t.keys() == target.keys()) {
                Some(i) => i,
                None => {
                    distinct.push(target);
                    distinct.len() - 1
                }
            };
            slot_of.push(slot);
            let mut node = &mut root;
            for key in target.keys() {
                node = node.children.entry(key.clone()).or_default();
            }
            node.slot = Some(slot);
        }
        let targets = distinct.len();
        let mut slots = targets;
        for key in extra {
            root.children.entry(Box::from(*key)).or_default().slot = Some(slots);
            slots += 1;
        }
        let nodes = root.into_nodes();
        let template = template(&nodes);
        Layout {
            slot_of,
            slots,
            targets,
            nodes,
            template,
        }
    }

    /// Empty slots for one object.
    pub fn empty_slots(&self) -> Vec<Option<Value>> {
        std::iter::repeat_with(|| None).take(self.slots).collect()
    }

    /// Run `f` with empty slots for one object: on the stack for the usual number of fields,
    /// in an array not much larger than needed (every slot is set empty before and checked
    /// when dropped after, so a small list inside `each` should not pay for 64).
    pub fn with_slots<R>(&self, f: impl FnOnce(&mut [Option<Value>]) -> R) -> R {
        fn on_stack<const N: usize, R>(n: usize, f: impl FnOnce(&mut [Option<Value>]) -> R) -> R {
            let mut slots: [Option<Value>; N] = [const { None }; N];
            f(&mut slots[..n])
        }
        match self.slots {
            0..=8 => on_stack::<8, R>(self.slots, f),
            9..=64 => on_stack::<64, R>(self.slots, f),
            _ => f(&mut self.empty_slots()),
        }
    }

    /// The slot field `index` writes.
    pub fn slot_of(&self, index: usize) -> usize {
        self.slot_of[index]
    }

    /// The slot of the `i`-th extra key given to [`Layout::new`].
    pub fn extra_slot(&self, i: usize) -> usize {
        self.targets + i
    }

    /// The object the written slots make; every slot is left empty for reuse.
    pub fn build(&self, slots: &mut [Option<Value>]) -> Map<String, Value> {
        let mut map = self.template.clone();
        fill(&mut map, &self.nodes, slots);
        map
    }

    /// [`Layout::build`] into `record`, reusing the keys and objects it already has: the
    /// previous record of a stream mostly has the same keys, so only the values are replaced.
    /// The result equals what [`Layout::build`] makes, whatever `record` held before.
    pub fn build_into(&self, slots: &mut [Option<Value>], record: &mut Value) {
        match record {
            Value::Object(map) if !map.is_empty() => refill(map, &self.nodes, slots),
            _ => *record = Value::Object(self.build(slots)),
        }
    }
}

fn template(nodes: &[Node]) -> Map<String, Value> {
    nodes
        .iter()
        .map(|node| match node {
            Node::Leaf { key, .. } => (String::from(&**key), Value::Null),
            Node::Object { key, children } => (String::from(&**key), Value::Object(template(children))),
        })
        .collect()
}

/// Put the slots' values into a copy of the template, dropping the keys nobody wrote (and
/// objects left empty). The template's keys and `nodes` are in the same (sorted) order.
fn fill(map: &mut Map<String, Value>, nodes: &[Node], slots: &mut [Option<Value>]) {
    let mut nodes = nodes.iter();
    map.retain(|_, value| match nodes.next() {
        Some(Node::Leaf { slot, .. }) => match slots.get_mut(*slot).and_then(Option::take) {
            Some(v) => {
                *value = v;
                true
            }
            None => false,
        },
        Some(Node::Object { children, .. }) => match value {
            Value::Object(inner) => {
                fill(inner, children, slots);
                !inner.is_empty()
            }
            _ => false,
        },
        None => false,
    });
}

impl Node {
    fn key(&self) -> &str {
        match self {
            Node::Leaf { key, .. } | Node::Object { key, .. } => key,
        }
    }
}

/// [`fill`] of an object that may hold any keys (the previous record's, usually the same as
/// this one's): values are replaced in place, keys of `nodes` it lacks are added, keys that
/// nobody wrote or no node names are removed.
fn refill(map: &mut Map<String, Value>, nodes: &[Node], slots: &mut [Option<Value>]) {
    if map.is_empty() || nodes.len() > 64 {
        *map = template(nodes);
        fill(map, nodes, slots);
        return;
    }
    // Bit i: nodes[i] has no key in `map` yet.
    let mut missing: u64 = 0;
    let mut next = 0;
    map.retain(|key, value| loop {
        let Some(node) = nodes.get(next) else {
            return false;
        };
        match node.key().cmp(key.as_str()) {
            std::cmp::Ordering::Less => {
                missing |= 1 << next;
                next += 1;
            }
            std::cmp::Ordering::Greater => return false,
            std::cmp::Ordering::Equal => {
                next += 1;
                return match node {
                    Node::Leaf { slot, .. } => match slots.get_mut(*slot).and_then(Option::take) {
                        Some(v) => {
                            *value = v;
                            true
                        }
                        None => false,
                    },
                    Node::Object { children, .. } => {
                        if !value.is_object() {
                            *value = Value::Object(Map::new());
                        }
                        match value {
                            Value::Object(inner) => {
                                refill(inner, children, slots);
                                !inner.is_empty()
                            }
                            _ => false,
                        }
                    }
                };
            }
        }
    });
    for i in next..nodes.len() {
        missing |= 1 << i;
    }
    while missing != 0 {
        let i = missing.trailing_zeros() as usize;
        missing &= missing - 1;
        match nodes.get(i) {
            None => {}
            Some(Node::Leaf { key, slot }) => {
                if let Some(v) = slots.get_mut(*slot).and_then(Option::take) {
                    map.insert(String::from(&**key), v);
                }
            }
            Some(Node::Object { key, children }) => {
                let mut inner = template(children);
                fill(&mut inner, children, slots);
                if !inner.is_empty() {
                    map.insert(String::from(&**key), Value::Object(inner));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn targets(list: &[&str]) -> Vec<TargetPath> {
        list.iter().map(|t| TargetPath::parse(t).unwrap()).collect()
    }

    /// Slots of `layout` with `value(i)` in each slot `i` that `written(i)` picks.
    fn slots_written(
        layout: &Layout,
        written: impl Fn(usize) -> bool,
        value: impl Fn(usize) -> Value,
    ) -> Vec<Option<Value>> {
        let mut slots = layout.empty_slots();
        for (i, slot) in slots.iter_mut().enumerate().filter(|(i, _)| written(*i)) {
            *slot = Some(value(i));
        }
        slots
    }

    #[test]
    fn builds_the_same_object_as_inserting_in_field_order() {
        let t = targets(&["b.y", "a", "b.x", "a", "c.d.e"]);
        let layout = Layout::new(&t, &["case_type"]);
        assert_eq!(layout.slot_of(3), layout.slot_of(1));
        let mut slots = layout.empty_slots();
        slots[layout.slot_of(0)] = Some(json!(1));
        slots[layout.slot_of(1)] = Some(json!("first"));
        slots[layout.slot_of(3)] = Some(json!("second"));
        slots[layout.extra_slot(0)] = Some(json!("penalty"));
        let built = Value::Object(layout.build(&mut slots));
        assert_eq!(built, json!({"a": "second", "b": {"y": 1}, "case_type": "penalty"}));
        assert!(slots.iter().all(Option::is_none));
        assert_eq!(Value::Object(layout.build(&mut slots)), json!({}));
    }

    #[test]
    fn building_into_any_earlier_object_gives_what_a_fresh_build_gives() {
        let t = targets(&["b.y", "a", "b.x", "c.d.e", "c.f", "g"]);
        let layout = Layout::new(&t, &["case_type"]);
        let written =
            |mask: u32, tag: &str| slots_written(&layout, |i| mask & (1 << i) != 0, |i| json!(format!("{tag}{i}")));
        let all = 1u32 << layout.slots;
        let foreign = [
            json!({"a": {"nested": 1}, "b": "text", "c": {"d": [1], "zz": 2}, "aa": 0, "zzz": null}),
            json!({"b": {}, "c": {"d": {}}}),
            json!(["not", "an", "object"]),
            json!("text"),
            json!({}),
        ];
        for current in 0..all {
            let expected = Value::Object(layout.build(&mut written(current, "new")));
            let earlier = (0..all)
                .map(|m| Value::Object(layout.build(&mut written(m, "old"))))
                .chain(foreign.iter().cloned());
            for mut record in earlier {
                let before = record.clone();
                let mut slots = written(current, "new");
                layout.build_into(&mut slots, &mut record);
                assert_eq!(record, expected, "after {before}");
                assert!(slots.iter().all(Option::is_none));
            }
        }
    }

    #[test]
    fn building_into_an_object_of_more_than_64_keys_gives_what_a_fresh_build_gives() {
        let names: Vec<String> = (0..70).map(|i| format!("k{i:02}")).collect();
        let t = targets(&names.iter().map(String::as_str).collect::<Vec<_>>());
        let layout = Layout::new(&t, &[]);
        let written = |every: usize| slots_written(&layout, |i| i % every == 0, |i| json!(i));
        let mut record = Value::Object(layout.build(&mut written(2)));
        layout.build_into(&mut written(3), &mut record);
        assert_eq!(record, Value::Object(layout.build(&mut written(3))));
        assert_eq!(record.as_object().map(Map::len), Some(24));
    }
}
