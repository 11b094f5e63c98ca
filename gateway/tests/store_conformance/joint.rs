//! Joint inspections (联合检查相似度比对、合并) on both backends: the index kept at commit, the
//! groups found in it, a rebuild, and operators' decisions.

use crate::joint_records::*;
use gateway::store::joint::{Decide, GroupFilter, GroupKind, GroupStatus, JointGroup, JointSettings};
use gateway::store::*;
use std::sync::Arc;

/// (kind, sorted member codes) of every group.
async fn shapes(store: &dyn Store) -> Vec<(GroupKind, GroupStatus, Vec<String>)> {
    let mut out: Vec<_> = groups(store)
        .await
        .into_iter()
        .map(|g| {
            let mut cases = g.cases();
            cases.sort();
            (g.kind, g.status, cases)
        })
        .collect();
    out.sort_by(|a, b| a.2.cmp(&b.2));
    out
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

pub async fn joint_pairs_by_different_agencies_within_the_window_form_transitive_groups(store: Arc<dyn Store>) {
    // A~B (5 days), B~C (5 days), A and C 10 days apart: one group of three.
    let codes = commit(
        &*store,
        vec![
            insp("J-1", AGENCY_A, TARGET, 1),
            insp("J-2", AGENCY_B, TARGET, 6),
            insp("J-3", AGENCY_C, TARGET, 11),
            // Another target: 19 days apart, and two by one agency: never a group.
            insp("J-4", AGENCY_A, OTHER_TARGET, 1),
            insp("J-5", AGENCY_B, OTHER_TARGET, 20),
            insp("J-6", AGENCY_A, OTHER_TARGET, 2),
        ],
    )
    .await;
    let found = groups(&*store).await;
    assert_eq!(found.len(), 1, "{found:?}");
    let g = &found[0];
    assert_eq!((g.kind, g.status), (GroupKind::Similar, GroupStatus::Candidate));
    assert_eq!(g.target_id, TARGET);
    assert_eq!(sorted(g.cases()), sorted(codes[..3].to_vec()));
    assert_eq!(g.dates(), ["2024-03-01", "2024-03-06", "2024-03-11"]);
    assert_eq!(g.agencies(), [AGENCY_A, AGENCY_B, AGENCY_C]);
    // Filters: by agency, by target, by a member's code, by status.
    let by = |f: GroupFilter| {
        let store = store.clone();
        async move {
            store
                .joint()
                .joint_groups(&GroupFilter { limit: 10, ..f })
                .await
                .expect("groups")
                .1
        }
    };
    assert_eq!(
        by(GroupFilter {
            agency: Some(AGENCY_C.into()),
            ..Default::default()
        })
        .await,
        1
    );
    assert_eq!(
        by(GroupFilter {
            target: Some(OTHER_TARGET.into()),
            ..Default::default()
        })
        .await,
        0
    );
    assert_eq!(
        by(GroupFilter {
            q: Some(codes[1].to_lowercase()),
            ..Default::default()
        })
        .await,
        1
    );
    assert_eq!(
        by(GroupFilter {
            status: Some(GroupStatus::Merged),
            ..Default::default()
        })
        .await,
        0
    );
    assert_eq!(
        by(GroupFilter {
            sources: Some(vec!["elsewhere".into()]),
            ..Default::default()
        })
        .await,
        0
    );
    // The same agency twice within the window is not a pair: adding A on day 2 of OTHER_TARGET
    // changed nothing, but B on day 3 pairs with both A's.
    commit(&*store, vec![insp("J-7", AGENCY_B, OTHER_TARGET, 3)]).await;
    let shapes = shapes(&*store).await;
    assert_eq!(shapes.len(), 2);
    assert!(shapes
        .iter()
        .any(|s| s.2.len() == 3 && s.2.contains(&codes[3]) && s.2.contains(&codes[5])));
    let counts = store.joint().joint_counts().await.expect("counts");
    assert_eq!(counts.get("candidate"), Some(&2));
}

pub async fn joint_a_new_version_moving_the_date_splits_the_group_and_a_withdrawal_removes_it(store: Arc<dyn Store>) {
    let codes = commit(
        &*store,
        vec![
            insp("M-1", AGENCY_A, TARGET, 1),
            insp("M-2", AGENCY_B, TARGET, 6),
            insp("M-3", AGENCY_C, TARGET, 11),
        ],
    )
    .await;
    let before = groups(&*store).await;
    assert_eq!(before.len(), 1);
    // B moves to day 20: A and C are 10 days apart, B 9 days from C: no pair is left.
    commit(&*store, vec![insp("M-2", AGENCY_B, TARGET, 20)]).await;
    assert!(groups(&*store).await.is_empty(), "the group split into singles");
    // B back on day 12: B~C, the group keeps nothing of A.
    commit(&*store, vec![insp("M-2", AGENCY_B, TARGET, 12)]).await;
    let after = groups(&*store).await;
    assert_eq!(after.len(), 1);
    assert_eq!(
        sorted(after[0].cases()),
        sorted(vec![codes[1].clone(), codes[2].clone()])
    );
    // A moves to another target: nothing changes here; withdrawing C dissolves the group.
    commit(&*store, vec![insp("M-3", AGENCY_C, TARGET, 11).delete()]).await;
    assert!(
        groups(&*store).await.is_empty(),
        "a withdrawn inspection leaves its group"
    );
}

pub async fn joint_declared_tasks_group_without_the_date_rule(store: Arc<dyn Store>) {
    let codes = commit(
        &*store,
        vec![
            insp("D-1", AGENCY_A, TARGET, 1).task("lhjc-2024-01"),
            insp("D-2", AGENCY_B, TARGET, 25).task("LHJC-2024-01"),
            // A lone declaration is matched like any inspection: C on day 2 pairs with nothing
            // else (A is in the declared group).
            insp("D-3", AGENCY_C, TARGET, 2).task("LHJC-OTHER"),
        ],
    )
    .await;
    let found = groups(&*store).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].kind, GroupKind::Declared);
    assert_eq!(found[0].task_id.as_deref(), Some("LHJC-2024-01"));
    assert_eq!(sorted(found[0].cases()), sorted(codes[..2].to_vec()));
    let by_task = GroupFilter {
        q: Some(" lhjc-2024-01".into()),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        store.joint().joint_groups(&by_task).await.expect("groups").1,
        1,
        "found by its task"
    );
}

pub async fn joint_participants_naming_each_other_form_a_declared_group_kept_by_a_rebuild(store: Arc<dyn Store>) {
    let codes = commit(
        &*store,
        vec![
            insp("P-1", AGENCY_A, TARGET, 2).participants(&[AGENCY_B]),
            insp("P-2", AGENCY_B, TARGET, 2).participants(&[AGENCY_A]),
            // Names A but on another day: another joint inspection, and 12 days away from the
            // others, so not a candidate by date either.
            insp("P-3", AGENCY_C, TARGET, 14).participants(&[AGENCY_A]),
        ],
    )
    .await;
    let check = |found: Vec<JointGroup>| {
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].kind, GroupKind::Declared);
        assert_eq!(sorted(found[0].cases()), sorted(codes[..2].to_vec()));
        assert!(
            found[0]
                .task_id
                .as_deref()
                .is_some_and(|t| t.starts_with("~2024-03-02:")),
            "{:?}",
            found[0].task_id
        );
    };
    check(groups(&*store).await);
    store.joint().joint_rebuild().await.expect("rebuild");
    check(groups(&*store).await);
}

pub async fn joint_rebuild_finds_the_groups_the_commits_kept(store: Arc<dyn Store>) {
    commit(
        &*store,
        vec![
            insp("R-1", AGENCY_A, TARGET, 1),
            insp("R-2", AGENCY_B, TARGET, 6),
            insp("R-3", AGENCY_C, TARGET, 11).task("T-1"),
            insp("R-4", AGENCY_A, OTHER_TARGET, 1).task("T-1"),
            insp("R-5", AGENCY_B, OTHER_TARGET, 28).task("T-1"),
        ],
    )
    .await;
    let incremental = shapes(&*store).await;
    assert_eq!(incremental.len(), 2);
    let first = groups(&*store).await;
    let report = store.joint().joint_rebuild().await.expect("rebuild");
    assert_eq!((report.inspections, report.groups), (5, 2));
    assert_eq!(shapes(&*store).await, incremental);
    let ids: Vec<i64> = groups(&*store).await.iter().map(|g| g.group_id).collect();
    assert_eq!(
        ids,
        first.iter().map(|g| g.group_id).collect::<Vec<_>>(),
        "the same groups keep their ids"
    );
    // With the index switched off commits write nothing; a rebuild catches up.
    store.joint().configure_joint(JointSettings {
        enabled: false,
        window_days: 7,
        background: false,
    });
    commit(&*store, vec![insp("R-6", AGENCY_C, OTHER_TARGET, 2).task("t-1")]).await;
    assert_eq!(shapes(&*store).await, incremental);
    let report = store.joint().joint_rebuild().await.expect("rebuild");
    assert_eq!((report.inspections, report.groups), (6, 2));
    let rebuilt = shapes(&*store).await;
    assert!(
        rebuilt
            .iter()
            .any(|(kind, _, cases)| *kind == GroupKind::Declared && cases.len() == 3),
        "{rebuilt:?}"
    );
}

pub async fn joint_merge_dismiss_and_undo_are_audited_and_a_changed_group_is_a_candidate_again(store: Arc<dyn Store>) {
    let codes = commit(
        &*store,
        vec![insp("X-1", AGENCY_A, TARGET, 1), insp("X-2", AGENCY_B, TARGET, 3)],
    )
    .await;
    let g = groups(&*store).await.remove(0);
    let sinks = vec!["platform".to_string()];
    // The lead agency must be a member's.
    let wrong = Decide::Merge {
        lead_agency: AGENCY_C.into(),
    };
    let err = store
        .joint()
        .joint_decide(g.group_id, &wrong, "op", "同一次进门", &sinks)
        .await
        .expect_err("not a member's agency");
    assert!(err.to_string().contains("lead_agency"), "{err}");
    let merge = Decide::Merge {
        lead_agency: AGENCY_B.into(),
    };
    let merged = store
        .joint()
        .joint_decide(g.group_id, &merge, "op", "同一次进门", &sinks)
        .await
        .expect("merge");
    assert_eq!(merged.status, GroupStatus::Merged);
    assert_eq!(
        merged.joint_id.as_deref(),
        Some(format!("LHJC-{}", g.group_id).as_str())
    );
    assert_eq!(merged.joint_version, 1);
    let decision = merged.decision.clone().expect("decision");
    assert_eq!(decision.lead_agency.as_deref(), Some(AGENCY_B));
    assert_eq!(sorted(decision.cases), sorted(codes.clone()));
    // Merging twice is a conflict.
    assert!(matches!(
        store
            .joint()
            .joint_decide(g.group_id, &merge, "op", "again", &sinks)
            .await,
        Err(StoreError::Conflict(_))
    ));
    let audit = store.audit_log(5).await.expect("audit");
    assert_eq!(audit[0].action, "joint.merge");
    assert_eq!(audit[0].subject, format!("joint-group:{}", g.group_id));
    assert_eq!(audit[0].detail["lead_agency"], AGENCY_B);
    // Undo: a candidate again, the merge kept as the previous decision, the joint record withdrawn.
    let undone = store
        .joint()
        .joint_decide(g.group_id, &Decide::Undo, "op", "误合并", &sinks)
        .await
        .expect("undo");
    assert_eq!(undone.status, GroupStatus::Candidate);
    assert_eq!(
        undone.joint_version, 2,
        "the withdrawal is the joint record's next version"
    );
    assert_eq!(undone.previous.as_ref().map(|p| p.status.as_str()), Some("merged"));
    // Dismiss, then a new member: a candidate again showing the dismissal.
    let dismissed = store
        .joint()
        .joint_decide(g.group_id, &Decide::Dismiss, "op", "不是同一次检查", &sinks)
        .await
        .expect("dismiss");
    assert_eq!(dismissed.status, GroupStatus::Dismissed);
    commit(&*store, vec![insp("X-3", AGENCY_C, TARGET, 5)]).await;
    let again = groups(&*store).await.remove(0);
    assert_eq!(again.group_id, g.group_id, "the group keeps its id");
    assert_eq!(again.status, GroupStatus::Candidate);
    assert_eq!(again.members.len(), 3);
    let previous = again.previous.expect("previous decision shown");
    assert_eq!(
        (previous.status.as_str(), previous.reason.as_str()),
        ("dismissed", "不是同一次检查")
    );
    let audit = store.audit_log(1).await.expect("audit");
    assert_eq!(
        (audit[0].action.as_str(), audit[0].actor.as_str()),
        ("joint.reopened", "system")
    );
}

/// Concurrent commits of one target's inspections (several gateway instances) see each other's:
/// the group is found whichever commits first. Each record is numbered from its own counter, so
/// that the commits do not wait for each other on a counter's lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_commits_of_one_targets_inspections_find_their_group() {
    let db = crate::common::TestDb::postgres_with_pool(8).await;
    let store = db.store();
    let targets = [TARGET, OTHER_TARGET, "360102199001011234", "360426199101010071"];
    let mut tasks = Vec::new();
    for (i, target) in targets.into_iter().enumerate() {
        for (j, agency) in [AGENCY_A, AGENCY_B].into_iter().enumerate() {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                let region = ["360100", "360400"][j];
                let record =
                    insp(&format!("CC-{i}-{j}"), agency, target, 1 + j as u32).numbered(2020 + i as i32, region);
                commit(&*store, vec![record]).await
            }));
        }
    }
    for t in tasks {
        t.await.expect("commit task");
    }
    let found = groups(&*store).await;
    assert_eq!(found.len(), targets.len(), "one group per target: {found:?}");
    assert!(found.iter().all(|g| g.members.len() == 2));
}
