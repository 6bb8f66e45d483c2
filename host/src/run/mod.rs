//! Run mode: the only async code. The controller's long-lived concerns,
//! each a task: etcd supervision, the join API, readiness.

pub mod readiness;
