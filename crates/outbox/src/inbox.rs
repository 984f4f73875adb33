//! A subscriber's side of at-least-once delivery: each event is taken in
//! once, by its id, whatever the redeliveries.

use foundry_platform::Error;
use foundry_platform::db::Tx;
use uuid::Uuid;

/// Records that `subscriber` takes in `event_id` in `tx` (system scope), the
/// transaction that applies the event: `true` the first time, `false` for a
/// redelivery (apply nothing, acknowledge).
pub async fn first_time(tx: &mut Tx, subscriber: &str, event_id: Uuid) -> Result<bool, Error> {
    let n = sqlx::query(
        "INSERT INTO inbox (subscriber, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(subscriber)
    .bind(event_id)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(n == 1)
}
