-- CodeDeploy: every operation of the model as codedeploy.<snake_name>{...}.
return require("ecsplay.service").build("codedeploy")
