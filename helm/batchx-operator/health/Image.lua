-- Argo CD health check of batchx.io/Image (argocd-cm: resource.customizations.health.batchx.io_Image).
-- Healthy once Ready (manifest accepted, coordinates assigned); Degraded when Stalled (an invalid
-- manifest, a tag where a digest is required, coordinates another Image already has: its spec is
-- immutable, so only a new Image helps); Progressing while it waits for its Environment.
-- It reads the standard conditions the operator writes for kstatus (Ready, Reconciling, Stalled).
-- Argo CD runs custom health scripts without the string library: only core Lua is used here.
local hs = {}
local status = obj.status
if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the BatchX operator"
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the BatchX operator to observe the latest spec"
  return hs
end
local found = {}
for _, condition in ipairs(status.conditions) do
  found[condition.type] = condition
end
local function describe(condition)
  if condition.message ~= nil and condition.message ~= "" then
    return condition.reason .. ": " .. condition.message
  end
  return condition.reason
end
if found.Stalled ~= nil and found.Stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(found.Stalled)
elseif found.Reconciling ~= nil and found.Reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(found.Reconciling)
elseif found.Ready ~= nil and found.Ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(found.Ready)
elseif found.Ready ~= nil then
  hs.status = "Progressing"
  hs.message = describe(found.Ready)
else
  hs.status = "Progressing"
  hs.message = "Waiting for the BatchX operator"
end
return hs
