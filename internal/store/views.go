package store

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/yurthub/yurthub/internal/store/schema"
)

// Views lists the list views of one component and resource with their info,
// without reading their objects (GET /pods asks which of kubelet's pod views exist).
func (s *Store) Views(ctx context.Context, component string, r Resource) ([]ListStats, error) {
	if err := checkResource(component, r); err != nil {
		return nil, err
	}
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	var out []ListStats
	err := s.view(func(tx *bolt.Tx) error {
		lists, _ := listsBucket(tx, false, component, r)
		if lists == nil {
			return nil
		}
		return lists.ForEachBucket(func(vk []byte) error {
			ns, sel, err := schema.ParseViewKey(vk)
			if err != nil {
				return fmt.Errorf("%w: %v", ErrCorrupt, err)
			}
			li, err := schema.DecodeListInfo(lists.Bucket(vk).Get(schema.KeyInfo))
			if err != nil {
				return fmt.Errorf("%w: list %s/%s %s: %v", ErrCorrupt, component, r, vk, err)
			}
			out = append(out, ListStats{Namespace: ns, Selector: sel, ListInfo: ListInfo(li)})
			return nil
		})
	})
	return out, err
}
