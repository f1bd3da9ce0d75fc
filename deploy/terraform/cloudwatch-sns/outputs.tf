output "topic_arn" {
  description = "Put this in router.yaml: sources.cloudwatch.topic_arns."
  value       = aws_sns_topic.alarms.arn
}

output "subscription_arn" {
  description = "The HTTPS subscription (pending until the router confirms it)."
  value       = aws_sns_topic_subscription.incident_router.arn
}
