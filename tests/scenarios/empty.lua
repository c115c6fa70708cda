-- An empty account: boto3 and the AWS CLI build everything from scratch (tests/py).
return {
  seed = 1,
  world = "empty",
}
