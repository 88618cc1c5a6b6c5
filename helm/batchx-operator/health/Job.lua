-- Argo CD health check of batchx.io/Job (argocd-cm: resource.customizations.health.batchx.io_Job).
-- Healthy once SUCCEEDED (or WARNING: finished, output collected); Degraded once it ended any
-- other way (FAILED, OUT_OF_MEMORY, INVALID_OUTPUT, CANCELLED: a Job never runs again);
-- Progressing while it waits, queues, starts, runs or is being cancelled. The message is the
-- state and the Succeeded condition's message (why it queued, with the numbers; why it failed).
-- Argo CD runs custom health scripts without the string library: only core Lua is used here.
local hs = {}
local status = obj.status
if status == nil or status.state == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the BatchX operator to admit the job"
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the BatchX operator to observe the latest spec"
  return hs
end
local detail = status.message
if status.conditions ~= nil then
  for _, condition in ipairs(status.conditions) do
    if condition.type == "Succeeded" and condition.message ~= nil and condition.message ~= "" then
      detail = condition.message
    end
  end
end
local state = status.state
hs.message = state
if detail ~= nil and detail ~= "" then
  hs.message = state .. ": " .. detail
end
if state == "SUCCEEDED" or state == "WARNING" then
  hs.status = "Healthy"
elseif state == "FAILED" or state == "OUT_OF_MEMORY" or state == "INVALID_OUTPUT" or state == "CANCELLED" then
  hs.status = "Degraded"
else
  hs.status = "Progressing"
end
return hs
