// Command health prints what GitOps tools conclude about one Kubernetes object.
//
// The operator's status is written for readers it does not control: kstatus
// (sigs.k8s.io/cli-utils, used by kpt, cli-utils appliers and, through its fork, Flux), Argo
// CD's Lua health checks, and Flux's healthCheckExprs. Testing against imitations of them would
// only prove that the imitation agrees with us, so the test bed builds the real libraries:
// status.Compute from cli-utils; gopher-lua, the interpreter Argo CD embeds, run the way Argo CD
// runs a resource customization (the object as the global `obj`, a table {status=..., message=...}
// returned); and the CEL status evaluator of Flux's kustomize-controller (fluxcd/pkg/runtime/cel).
//
// Usage:
//
//	health kstatus < object.json           -> {"status": "Current", "message": "..."}
//	health lua SCRIPT.lua < object.json    -> {"status": "Healthy", "message": "..."}
//	health flux EXPRS.json < object.json   -> {"status": "Failed", "message": ""}
//
// EXPRS.json is one entry of a Kustomization's spec.healthCheckExprs (current, failed, inProgress).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/fluxcd/pkg/apis/kustomize"
	fluxcel "github.com/fluxcd/pkg/runtime/cel"
	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	kjson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: health kstatus | health lua SCRIPT.lua | health flux EXPRS.json (object JSON on stdin)")
	}
	raw, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail("reading stdin: %v", err)
	}
	// apimachinery's decoder, as the API client of either tool: integers become int64.
	var obj map[string]interface{}
	if err := kjson.Unmarshal(raw, &obj); err != nil {
		fail("object JSON: %v", err)
	}
	var out verdict
	switch {
	case os.Args[1] == "kstatus" && len(os.Args) == 2:
		out, err = kstatus(obj)
	case os.Args[1] == "lua" && len(os.Args) == 3:
		out, err = argoLua(os.Args[2], obj)
	case os.Args[1] == "flux" && len(os.Args) == 3:
		out, err = fluxExprs(os.Args[2], obj)
	default:
		fail("usage: health kstatus | health lua SCRIPT.lua | health flux EXPRS.json (object JSON on stdin)")
	}
	if err != nil {
		fail("%v", err)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail("writing: %v", err)
	}
}

func kstatus(obj map[string]interface{}) (verdict, error) {
	res, err := status.Compute(&unstructured.Unstructured{Object: obj})
	if err != nil {
		return verdict{}, err
	}
	return verdict{Status: res.Status.String(), Message: res.Message}, nil
}

// fluxExprs evaluates healthCheckExprs as kustomize-controller does (RFC 0009: observedGeneration
// first, then inProgress, failed, current; none true is InProgress).
func fluxExprs(path string, obj map[string]interface{}) (verdict, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return verdict{}, err
	}
	var exprs kustomize.HealthCheckExpressions
	if err := json.Unmarshal(raw, &exprs); err != nil {
		return verdict{}, fmt.Errorf("healthCheckExprs entry: %w", err)
	}
	evaluator, err := fluxcel.NewStatusEvaluator(&exprs)
	if err != nil {
		return verdict{}, err
	}
	res, err := evaluator.Evaluate(context.Background(), &unstructured.Unstructured{Object: obj})
	if err != nil {
		return verdict{}, err
	}
	return verdict{Status: res.Status.String(), Message: res.Message}, nil
}

// argoLua runs a health script as Argo CD's controller runs a health customization from
// argocd-cm (argo-cd util/lua/lua.go, runLua and ExecuteHealthLua): standard libraries skipped
// except package, base and table (there is no string or math library unless the admin sets
// useOpenLibs, so the chart's scripts must not need them), a one-second deadline, the object bound
// to the global `obj`, and the returned table read back as a health status.
func argoLua(path string, obj map[string]interface{}) (verdict, error) {
	script, err := os.ReadFile(path)
	if err != nil {
		return verdict{}, err
	}
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	for _, lib := range []struct {
		name string
		fn   lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := L.CallByParam(lua.P{Fn: L.NewFunction(lib.fn), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return verdict{}, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	L.SetContext(ctx)
	L.SetGlobal("obj", toLua(L, obj))
	if err := L.DoString(string(script)); err != nil {
		return verdict{}, fmt.Errorf("lua: %w", err)
	}
	ret, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		return verdict{}, fmt.Errorf("lua: expect table output from Lua script, not %s", L.Get(-1).Type())
	}
	out := verdict{}
	if s, ok := ret.RawGetString("status").(lua.LString); ok {
		out.Status = string(s)
	}
	if m, ok := ret.RawGetString("message").(lua.LString); ok {
		out.Message = string(m)
	}
	switch out.Status {
	case "Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown":
	default:
		// What Argo CD shows for a script that returns anything else.
		return verdict{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
	}
	return out, nil
}

// toLua converts the object as Argo CD's decodeValue does: objects become tables keyed by
// string, arrays 1-based tables, numbers Lua numbers, anything else nil.
func toLua(L *lua.LState, v interface{}) lua.LValue {
	switch x := v.(type) {
	case bool:
		return lua.LBool(x)
	case float64:
		return lua.LNumber(x)
	case int64:
		return lua.LNumber(x)
	case string:
		return lua.LString(x)
	case []interface{}:
		t := L.CreateTable(len(x), 0)
		for _, item := range x {
			t.Append(toLua(L, item))
		}
		return t
	case map[string]interface{}:
		t := L.CreateTable(0, len(x))
		for k, item := range x {
			t.RawSetH(lua.LString(k), toLua(L, item))
		}
		return t
	}
	return lua.LNil
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "health: "+format+"\n", args...)
	os.Exit(2)
}
