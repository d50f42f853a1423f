package main

import (
	"os"
	"strings"
	"time"

	"github.com/stratafs/strata/overlay"
)

// testHooks reads the crash-test hook from the environment. It exists for
// the crash-safety tests, which kill the daemon at exactly this point:
//
//	STRATA_TEST_PAUSE_COPYUP=SUBSTR  a copy-up of a path containing SUBSTR
//	                                 stops just before the new object is
//	                                 linked into the upper layer
//	STRATA_TEST_PAUSE_MARK=FILE      created when it stops there
//
// Nothing is set unless the variable is.
func testHooks() overlay.Hooks {
	sub := os.Getenv("STRATA_TEST_PAUSE_COPYUP")
	if sub == "" {
		return overlay.Hooks{}
	}
	mark := os.Getenv("STRATA_TEST_PAUSE_MARK")
	return overlay.Hooks{CopyUpBeforeLink: func(rel string) {
		if !strings.Contains(rel, sub) {
			return
		}
		if mark != "" {
			os.WriteFile(mark, []byte(rel+"\n"), 0644)
		}
		for {
			time.Sleep(time.Hour)
		}
	}}
}
