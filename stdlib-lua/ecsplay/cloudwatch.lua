-- CloudWatch: every operation of the model as cloudwatch.<snake_name>{...}.
return require("ecsplay.aws.service").build("cloudwatch")
