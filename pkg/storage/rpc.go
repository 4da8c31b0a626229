package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/rclone/rclone/fs"
	"github.com/rclone/rclone/fs/config/configfile"
	"github.com/rclone/rclone/fs/config/obscure"
	"github.com/rclone/rclone/librclone/librclone"
)

// rpc calls an rclone RC method through librclone: in is marshalled to JSON,
// the reply is unmarshalled into out (when out is not nil).
func rpc(method string, in any, out any) error {
	input := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("rclone rpc %s: encode input: %w", method, err)
		}
		input = string(b)
	}
	output, status := librclone.RPC(method, input)
	if status != http.StatusOK {
		var reply struct {
			Error string `json:"error"`
		}
		if json.Unmarshal([]byte(output), &reply) != nil || reply.Error == "" {
			reply.Error = strings.TrimSpace(output)
		}
		return fmt.Errorf("rclone rpc %s: %s (status %d)", method, reply.Error, status)
	}
	if out != nil {
		if err := json.Unmarshal([]byte(output), out); err != nil {
			return fmt.Errorf("rclone rpc %s: decode reply: %w", method, err)
		}
	}
	return nil
}

// callRPC runs rpc under ctx, bounded by DefaultTimeout. librclone takes no
// context, so a call that outlives ctx finishes in the background and its
// result is dropped.
func callRPC(ctx context.Context, op, name, method string, in, out any) error {
	if err := ensureInit(); err != nil {
		return &Error{Op: op, Name: name, Kind: KindFatal, Err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
	defer cancel()
	if err := ctx.Err(); err != nil {
		return &Error{Op: op, Name: name, Kind: classify(err), Err: err}
	}
	// The reply is decoded here, not in the goroutine, which may outlive us.
	var raw json.RawMessage
	done := make(chan error, 1)
	go func() { done <- rpc(method, in, &raw) }()
	select {
	case err := <-done:
		if err == nil && out != nil {
			err = json.Unmarshal(raw, out)
		}
		if err != nil {
			return &Error{Op: op, Name: name, Kind: KindFatal, Err: err}
		}
		return nil
	case <-ctx.Done():
		return &Error{Op: op, Name: name, Kind: classify(ctx.Err()), Err: ctx.Err()}
	}
}

// ListRemotes lists the remotes defined in the rclone config file (and in
// RCLONE_CONFIG_<NAME>_TYPE environment variables), sorted.
func ListRemotes(ctx context.Context) ([]string, error) {
	var reply struct {
		Remotes []string `json:"remotes"`
	}
	if err := callRPC(ctx, "list remotes", "", "config/listremotes", nil, &reply); err != nil {
		return nil, err
	}
	slices.Sort(reply.Remotes)
	return reply.Remotes, nil
}

// RemoteType returns the backend type ("sftp", "s3", ...) of a configured
// remote; KindNotFound when the config file has no such remote.
func RemoteType(ctx context.Context, name string) (string, error) {
	name = strings.TrimSuffix(name, ":")
	var reply map[string]any
	if err := callRPC(ctx, "remote type", name, "config/get", map[string]string{"name": name}, &reply); err != nil {
		return "", err
	}
	typ, _ := reply["type"].(string)
	if typ == "" {
		return "", &Error{Op: "remote type", Name: name, Kind: KindNotFound,
			Err: fmt.Errorf("no remote %q in rclone config file %s: check the name with `rclone listremotes --config %s`", name, configFileName(), configFileName())}
	}
	return typ, nil
}

// CreateRemote writes a remote to the rclone config file, replacing one of
// the same name. Password options are given in plain text and stored
// obscured, as `rclone config create` does; escale obscures them before the
// call so rclone's own debug trace never sees them in clear. Backends that
// need an interactive step (OAuth) are refused with a hint.
func CreateRemote(ctx context.Context, name, typ string, params map[string]string) error {
	const op = "create remote"
	if err := ensureInit(); err != nil {
		return &Error{Op: op, Name: name, Kind: KindFatal, Err: err}
	}
	info, err := fs.Find(typ)
	if err != nil {
		return &Error{Op: op, Name: name, Kind: KindFatal,
			Err: fmt.Errorf("unknown backend type %q: see `rclone help backends`", typ)}
	}
	parameters := make(map[string]string, len(params))
	for k, v := range params {
		if opt := info.Options.Get(k); opt != nil && opt.IsPassword && v != "" {
			if v, err = obscure.Obscure(v); err != nil {
				return &Error{Op: op, Name: name, Kind: KindFatal, Err: fmt.Errorf("obscure %s: %w", k, err)}
			}
		}
		parameters[k] = v
	}
	in := map[string]any{
		"name": name, "type": typ, "parameters": parameters,
		"opt": map[string]bool{"nonInteractive": true, "noObscure": true},
	}
	var reply struct {
		State  string `json:"State"`
		Error  string `json:"Error"`
		Option *struct {
			Name string `json:"Name"`
		} `json:"Option"`
	}
	if err := callRPC(ctx, op, name, "config/create", in, &reply); err != nil {
		return err
	}
	if reply.Error != "" {
		return &Error{Op: op, Name: name, Kind: KindFatal, Err: errors.New(reply.Error)}
	}
	if reply.State != "" {
		question := ""
		if reply.Option != nil {
			question = fmt.Sprintf(" (it asks for %q)", reply.Option.Name)
		}
		return &Error{Op: op, Name: name, Kind: KindUnsupported,
			Err: fmt.Errorf("backend %s needs interactive configuration%s: run `rclone config --config %s` to create this remote", typ, question, configFileName())}
	}
	return verifySaved(op, name)
}

// verifySaved re-reads the config file: rclone's SaveConfig only logs a
// failure to write it.
func verifySaved(op, name string) error {
	path := ConfigPath()
	if path == "" {
		return nil // memory-only config: nothing to save
	}
	var s configfile.Storage
	if err := s.Load(); err != nil {
		return &Error{Op: op, Name: name, Kind: KindFatal,
			Err: fmt.Errorf("rclone config file %s was not written: %w (check that its folder is writable)", path, err)}
	}
	if !s.HasSection(name) {
		return &Error{Op: op, Name: name, Kind: KindFatal,
			Err: fmt.Errorf("remote %q was not saved to rclone config file %s (check that it is writable)", name, path)}
	}
	return nil
}
