package devices

import "fmt"

// owns checks a station against RegistryOptions.Owner.
func (r *Registry) owns(station string) error {
	if r.owner == nil {
		return nil
	}
	if err := r.owner(station); err != nil {
		return fmt.Errorf("station %s: %w: %v", station, ErrInvalid, err)
	}
	return nil
}

// Foreign returns how many stations in the data file this registry left
// out because RegistryOptions.Owner refused them.
func (r *Registry) Foreign() int { return r.foreign }
