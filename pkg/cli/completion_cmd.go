package cli

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

// Completion scripts call `escale --generate-bash-completion`, which
// urfave/cli answers with the commands and flags valid at that point.
const bashCompletion = `# escale bash completion: source this file, or put it in
# /etc/bash_completion.d/escale (zsh: autoload -U +X bashcompinit && bashcompinit first)
_escale_complete() {
  local cur opts
  cur="${COMP_WORDS[COMP_CWORD]}"
  if [[ "$cur" == "-"* ]]; then
    opts=$("${COMP_WORDS[@]:0:$COMP_CWORD}" "$cur" --generate-bash-completion 2>/dev/null)
  else
    opts=$("${COMP_WORDS[@]:0:$COMP_CWORD}" --generate-bash-completion 2>/dev/null)
  fi
  COMPREPLY=($(compgen -W "${opts}" -- "${cur}"))
  return 0
}
complete -o bashdefault -o default -F _escale_complete escale
`

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script (bash, zsh or fish)",
		ArgsUsage: "bash|zsh|fish",
		Action: func(c *cli.Context) error {
			switch c.Args().First() {
			case "bash", "zsh":
				_, err := fmt.Fprint(c.App.Writer, bashCompletion)
				return err
			case "fish":
				s, err := c.App.ToFishCompletion()
				if err != nil {
					return err
				}
				_, err = fmt.Fprint(c.App.Writer, s)
				return err
			}
			return withCode(ExitError, fmt.Errorf("usage: escale completion bash|zsh|fish"))
		},
	}
}
