//! One module per fault. Each test names the behaviour it proves.

mod broker_restart;
mod database_restart;
mod lanes_worker_kill;
mod network_cut;
mod poison;
mod postgres_failover;
mod postgres_sync_standby;
mod rabbitmq_cluster;
mod resource_alarm;
mod sigterm_drain;
mod slow_database;
mod worker_kill;
