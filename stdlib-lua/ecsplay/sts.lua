-- STS: every operation of the model as sts.<snake_name>{...} (get_caller_identity, ...).
return require("ecsplay.aws.service").build("sts")
