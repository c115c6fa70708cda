-- Elastic Load Balancing v2: every operation of the model as elbv2.<snake_name>{...}.
return require("ecsplay.aws.service").build("elbv2")
