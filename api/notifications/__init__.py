"""User notifications (fed by the stream pipeline) and Web Push subscriptions."""
