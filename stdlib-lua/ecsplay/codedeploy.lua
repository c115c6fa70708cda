-- CodeDeploy: every operation of the model as codedeploy.<snake_name>{...}.
return require("ecsplay.aws.service").build("codedeploy")
