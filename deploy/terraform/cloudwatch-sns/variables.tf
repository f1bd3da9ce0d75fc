variable "region" {
  description = "AWS region of the alarms and the SNS topic."
  type        = string
  default     = "eu-west-1"
}

variable "topic_name" {
  description = "SNS topic the alarms publish to. Its ARN goes into router.yaml sources.cloudwatch.topic_arns."
  type        = string
  default     = "incident-router-alarms"
}

variable "router_url" {
  description = "Public HTTPS base URL of incident-router (SNS cannot reach private endpoints), e.g. https://incident-router.example.com."
  type        = string

  validation {
    condition     = startswith(var.router_url, "https://")
    error_message = "SNS must deliver over HTTPS: router_url has to start with https://."
  }
}

variable "basic_auth_user" {
  description = "Optional basic-auth user embedded in the subscription URL (router.yaml sources.cloudwatch.auth). Empty: none; the router still verifies every SNS signature."
  type        = string
  default     = ""
}

variable "basic_auth_password" {
  description = "Password for basic_auth_user."
  type        = string
  default     = ""
  sensitive   = true
}

variable "load_balancer_arn_suffix" {
  description = "ARN suffix of the ALB whose 5xx rate the example alarm watches (app/my-alb/0123456789abcdef)."
  type        = string
}
