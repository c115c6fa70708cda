--[[
ecsplay.aws: the public face of the AWS layer. Playbooks and the layers
above require this name; the modules inside aws/ require the pieces they need
(ecsplay.aws.call and friends) directly, so this facade can re-export without
creating a require cycle.
]]
return require "ecsplay.aws.call"
