// Package recreate brings back drifted bare pods. The drift controller saves a bare pod's
// admitted spec in the operator's namespace; this controller, reconciling those saved specs,
// deletes the drifted pod and creates it again from the spec once it is gone. Saved specs left
// by a previous leader are found like any other object at start, so nothing is lost to a
// restart and nothing runs outside the workqueue.
package recreate
