-- Argo CD health check of batchx.io/Environment (argocd-cm: resource.customizations.health.batchx.io_Environment).
-- Healthy once Ready (namespace, quota and role bindings in place); Degraded when Stalled (a
-- namespace of the same name belongs to someone else: NamespaceConflict); Progressing while it is
-- set up or its namespace is terminating.
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
