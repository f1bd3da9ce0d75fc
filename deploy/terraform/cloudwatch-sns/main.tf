# CloudWatch alarm -> SNS topic -> HTTPS subscription -> incident-router /webhooks/cloudwatch.
#
# The router confirms the subscription itself: it verifies the SubscriptionConfirmation's
# signature and topic, then fetches its SubscribeURL (sources.cloudwatch.confirm_subscriptions).
# Put the topic's ARN (output `topic_arn`) into router.yaml before applying, or the router
# answers 403 to everything from it:
#
#   sources:
#     cloudwatch:
#       topic_arns: ["arn:aws:sns:eu-west-1:123456789012:incident-router-alarms"]

locals {
  credentials = var.basic_auth_user == "" ? "" : "${urlencode(var.basic_auth_user)}:${urlencode(var.basic_auth_password)}@"
  endpoint    = replace("${var.router_url}/webhooks/cloudwatch", "https://", "https://${local.credentials}")
}

data "aws_caller_identity" "current" {}

resource "aws_sns_topic" "alarms" {
  name = var.topic_name
}

# Only CloudWatch alarms of this account may publish.
data "aws_iam_policy_document" "alarms_publish" {
  statement {
    sid     = "CloudWatchAlarmsPublish"
    actions = ["sns:Publish"]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    resources = [aws_sns_topic.alarms.arn]
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:aws:cloudwatch:${var.region}:${data.aws_caller_identity.current.account_id}:alarm:*"]
    }
  }
}

resource "aws_sns_topic_policy" "alarms" {
  arn    = aws_sns_topic.alarms.arn
  policy = data.aws_iam_policy_document.alarms_publish.json
}

resource "aws_sns_topic_subscription" "incident_router" {
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "https"
  endpoint  = local.endpoint
  # The router confirms the subscription (GET SubscribeURL) as soon as SNS asks.
  endpoint_auto_confirms          = true
  confirmation_timeout_in_minutes = 5
  # The router refuses raw delivery: it needs the signed JSON envelope.
  raw_message_delivery = false

  # SNS retries 5xx/429 (the router answers 503 when its log cannot take the alarm). The
  # default is 3 retries 20 s apart; give an outage of the router up to ~1 hour.
  delivery_policy = jsonencode({
    healthyRetryPolicy = {
      minDelayTarget     = 5
      maxDelayTarget     = 300
      numRetries         = 30
      numNoDelayRetries  = 0
      numMinDelayRetries = 2
      numMaxDelayRetries = 10
      backoffFunction    = "exponential"
    }
    throttlePolicy = {
      maxReceivesPerSecond = 10
    }
  })
}

# An example alarm: the ALB answers more than 5% 5xx. OK actions send the resolution.
resource "aws_cloudwatch_metric_alarm" "alb_5xx_ratio" {
  alarm_name          = "api-alb-5xx-ratio"
  alarm_description   = "More than 5% of API requests answered 5xx by the load balancer."
  comparison_operator = "GreaterThanThreshold"
  threshold           = 5
  evaluation_periods  = 3
  datapoints_to_alarm = 2
  treat_missing_data  = "notBreaching"

  metric_query {
    id          = "ratio"
    expression  = "100 * errors / MAX([errors, requests])"
    label       = "5xx ratio (%)"
    return_data = true
  }
  metric_query {
    id = "errors"
    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "HTTPCode_Target_5XX_Count"
      dimensions  = { LoadBalancer = var.load_balancer_arn_suffix }
      period      = 60
      stat        = "Sum"
    }
  }
  metric_query {
    id = "requests"
    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "RequestCount"
      dimensions  = { LoadBalancer = var.load_balancer_arn_suffix }
      period      = 60
      stat        = "Sum"
    }
  }

  alarm_actions = [aws_sns_topic.alarms.arn]
  ok_actions    = [aws_sns_topic.alarms.arn]
}
